#!/usr/bin/env python3
"""meta_peer.py - a test peer that plays Meta's side of a WhatsApp Cloud API call.

Controlled over stdin/stdout with JSON lines (one command or event per line).
Only JSON goes to stdout; diagnostics go to stderr.

Commands (stdin):
  {"cmd":"offer","tone_hz":440,"record":"/path/heard.wav"}   -> {"event":"offer","sdp":"..."}
      optional: "host":"127.0.0.1" (host candidate address)
      optional: "play":"/path/speech.wav" (say this file instead of the sine: 16-bit PCM WAV,
                any rate and channel count, mixed to mono and resampled to 48 kHz. It plays
                once from the first unmute, a mute pauses it, and silence follows its end;
                {"event":"played"} says its last frame went out)
      optional: "opus_bitrate":20000 (encode like Meta's offers instead of aiortc's 96 kbit/s
                stereo full band: mono at this bitrate, band-limited to 8 kHz as
                maxplaybackrate=16000 / sprop-maxcapturerate=16000 say, doc §5.1)
  {"cmd":"answer","sdp":"..."}   -> {"event":"ice_role",...}, {"event":"connected"}
  {"cmd":"unmute"}               -> start sending audio (nothing is sent before)
  {"cmd":"mute"}                 -> stop sending audio again
  {"cmd":"dtmf","digit":"5"}     -> RFC 4733 event on PT 126 (8000 Hz duration units)
  {"cmd":"stats"}                -> {"event":"stats",...}
  {"cmd":"close"}                -> {"event":"closed"}, exit 0 (also on stdin EOF)

Events (stdout): offer, ice_role, connected, first_audio, dtmf, stats, closed, error,
                 state (connection state changes), unexpected_pt, played.

Recording: 16-bit mono WAV at 48000 Hz of the decoded incoming Opus (PT 111).

Pinned: aiortc==1.16.0, aioice==0.13.0 (the ICE-lite hook below touches aioice internals).
"""

import argparse
import asyncio
import fractions
import json
import logging
import math
import struct
import sys
import time
import wave

import aioice.ice
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtpPacket

log = logging.getLogger("metapeer")

OPUS_PT = 111
DTMF_PT = 126
SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
DTMF_DIGITS = "0123456789*#ABCD"  # RFC 4733 event codes 0..15

# --------------------------------------------------------------------------------------
# Loopback host candidates.
#
# aioice.ice.Connection.gather_candidates() calls the module-level function
# aioice.ice.get_host_addresses(), which skips 127.0.0.1. Tests run on loopback, so we
# replace that function with one returning the addresses we want.
# --------------------------------------------------------------------------------------
HOST_ADDRESSES = ["127.0.0.1"]


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list:
    return list(HOST_ADDRESSES)


aioice.ice.get_host_addresses = _host_addresses


# --------------------------------------------------------------------------------------
# ICE-lite on top of aioice 0.13.0.
#
# aiortc creates one aioice.ice.Connection per ICE transport. We swap that object's
# class for this subclass (obj.__class__ = LiteConnection) right after the transceiver
# is created, before gathering. Internals touched (all aioice.ice.Connection, 0.13.0):
#   ice_controlling       -> data-descriptor property pinned to False (aiortc sets it True
#                            for an offerer in setLocalDescription; the write is ignored)
#   _tie_breaker          -> 0, so request_received() answers an incoming ICE-CONTROLLED
#                            check with 487 (the full agent must switch to controlling)
#                            instead of switching us to controlling
#   _check_periodic()     -> starts no checks; keeps connect() waiting until completed
#   check_start()         -> never sends a request (counted, should stay 0)
#   check_incoming()      -> replaced: pair the source (learning a peer-reflexive remote
#                            candidate if needed), mark it valid, and select it when the
#                            request carries USE-CANDIDATE (first nomination wins)
#   _check_list_maybe_fail(), _prune_components() -> no-ops: a lite agent never fails
#                            by itself and keeps its component even when the answer has
#                            no candidates (checks come from peer-reflexive addresses)
#   query_consent()       -> no-op: a lite agent does not send consent checks
#   connect()             -> wraps each StunProtocol.request to count outgoing requests
# The STUN response path (request_received: auth, 487 handling, Binding success) is
# aioice's own and unchanged.
# --------------------------------------------------------------------------------------
class LiteConnection(aioice.ice.Connection):
    @property
    def ice_controlling(self) -> bool:  # type: ignore[override]
        return False

    @ice_controlling.setter
    def ice_controlling(self, value: bool) -> None:
        pass

    def _lite_init(self) -> None:
        self._tie_breaker = 0
        self.lite_stats = {
            "requests_sent": 0,
            "checks_received": 0,
            "remote_controlling": 0,
            "remote_controlled": 0,
            "use_candidate": 0,
        }

    async def connect(self) -> None:
        for proto in self._protocols:
            orig = proto.request

            async def counted(*args, __orig=orig, **kwargs):
                self.lite_stats["requests_sent"] += 1
                return await __orig(*args, **kwargs)

            proto.request = counted
        await super().connect()

    def _check_periodic(self) -> bool:
        return not self._check_list_done

    async def check_start(self, pair) -> None:
        self.lite_stats["requests_sent"] += 1  # must never happen
        log.error("lite agent asked to start a check for %s", pair)

    def _check_list_maybe_fail(self) -> None:
        return

    def _prune_components(self) -> None:
        return

    async def query_consent(self) -> None:
        return

    def check_incoming(self, message, addr, protocol) -> None:
        st = self.lite_stats
        st["checks_received"] += 1
        if "ICE-CONTROLLING" in message.attributes:
            st["remote_controlling"] += 1
        if "ICE-CONTROLLED" in message.attributes:
            st["remote_controlled"] += 1
        component = protocol.local_candidate.component
        remote = None
        for c in self._remote_candidates:
            if c._network_host == addr[0] and c.port == addr[1] and c.component == component:
                remote = c
                break
        if remote is None:
            remote = aioice.Candidate(
                foundation=aioice.ice.random_string(10),
                component=component,
                transport="udp",
                priority=message.attributes.get("PRIORITY", 0),
                host=addr[0],
                port=addr[1],
                type="prflx",
            )
            remote._network_host = addr[0]
            self._remote_candidates.append(remote)
        pair = self._find_pair(protocol, remote)
        if pair is None:
            pair = aioice.ice.CandidatePair(protocol, remote)
            self._check_list.append(pair)
            self.sort_check_list()
        # The check succeeded from our side (we answered it): the pair is valid.
        pair.state = aioice.ice.CandidatePair.State.SUCCEEDED
        if "USE-CANDIDATE" in message.attributes:
            st["use_candidate"] += 1
            pair.remote_nominated = True
            pair.nominated = True
            if component not in self._nominated:
                self._nominated[component] = pair
                self._check_list_maybe_complete()


def make_lite(conn: aioice.ice.Connection) -> LiteConnection:
    conn.__class__ = LiteConnection
    # the plain attribute set in Connection.__init__ is shadowed by the property now
    conn.__dict__.pop("ice_controlling", None)
    conn._lite_init()
    return conn  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------
def emit(event: str, **fields) -> None:
    fields = {"event": event, **fields}
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------
# Media: gated sources
# --------------------------------------------------------------------------------------
class GatedSource(MediaStreamTrack):
    """20 ms frames, s16 mono 48 kHz, real-time paced. recv() blocks while muted, so aiortc's
    sender loop sends no RTP at all before unmute. Subclasses say what the samples are."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.unmuted = asyncio.Event()
        self._pts = 0
        self._t0 = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if not self.unmuted.is_set():
            await self.unmuted.wait()
            self._t0 = None  # restart pacing after a mute
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - self._pts / SAMPLE_RATE
        due = self._t0 + self._pts / SAMPLE_RATE
        if due > now:
            await asyncio.sleep(due - now)
        samples = self.next_frame()
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._pts += FRAME_SAMPLES
        return frame

    def next_frame(self) -> np.ndarray:
        """The next FRAME_SAMPLES samples as little-endian int16."""
        raise NotImplementedError


class GatedSine(GatedSource):
    def __init__(self, freq: float, level: float = 0.3) -> None:
        super().__init__()
        self.freq = float(freq)
        self.level = level
        self._phase = 0

    def next_frame(self) -> np.ndarray:
        n = np.arange(self._phase, self._phase + FRAME_SAMPLES)
        self._phase += FRAME_SAMPLES
        return (self.level * 32767 * np.sin(2 * math.pi * self.freq * n / SAMPLE_RATE)).astype("<i2")


class WavPlayer(GatedSource):
    """A WAV file, once, then silence. Once rather than looped: the far end's recording then
    holds a single copy of the utterance, which a scorer can cut out whole; a loop would put
    a seam wherever the cut falls."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.samples = read_wav_48k(path)
        self.pos = 0
        self.played = False

    def next_frame(self) -> np.ndarray:
        frame = np.zeros(FRAME_SAMPLES, dtype="<i2")
        chunk = self.samples[self.pos:self.pos + FRAME_SAMPLES]
        frame[:len(chunk)] = chunk
        self.pos += len(chunk)
        if self.pos >= len(self.samples) and not self.played:
            self.played = True
            emit("played", seconds=len(self.samples) / SAMPLE_RATE)
        return frame


def read_wav_48k(path: str) -> np.ndarray:
    """A 16-bit PCM WAV as mono int16 at SAMPLE_RATE."""
    from scipy.signal import resample_poly  # only players need it; tone tests start faster

    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit samples; only 16-bit PCM is played")
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    x = pcm.reshape(-1, channels).astype(np.float64).mean(axis=1)
    g = math.gcd(rate, SAMPLE_RATE)
    x = resample_poly(x, SAMPLE_RATE // g, rate // g)
    return np.clip(np.round(x), -32768, 32767).astype("<i2")


def encode_like_meta(bitrate: int) -> None:
    """Makes every Opus encoder aiortc creates from now on mono, `bitrate` bit/s and wideband
    (8 kHz audio bandwidth), the way Meta's offers describe its stream (doc §5.1:
    maxaveragebitrate=20000;maxplaybackrate=16000;sprop-maxcapturerate=16000).
    aiortc 1.16.0's get_encoder() looks up OpusEncoder in aiortc.codecs at call time."""
    import aiortc.codecs
    from aiortc.codecs.opus import OpusEncoder

    class MetaOpusEncoder(OpusEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.codec.bit_rate = bitrate
            self.codec.layout = "mono"
            self.codec.options = {"application": "voip", "cutoff": "8000"}
            self.resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE,
                                               frame_size=FRAME_SAMPLES)

    aiortc.codecs.OpusEncoder = MetaOpusEncoder


# --------------------------------------------------------------------------------------
# SDP helpers
# --------------------------------------------------------------------------------------
def sdp_lines(sdp: str) -> list:
    return [l for l in sdp.replace("\r\n", "\n").split("\n") if l]


def crlf(lines: list) -> str:
    return "\r\n".join(lines) + "\r\n"


def sdp_values(sdp: str) -> dict:
    """Pull the transport values out of aiortc's SDP text."""
    v = {"candidates": [], "fingerprint": None, "ssrc": None}
    for l in sdp_lines(sdp):
        if l.startswith("m=audio "):
            v["port"] = int(l.split()[1])
        elif l.startswith("c=IN IP4 "):
            v["ip"] = l.split()[2]
        elif l.startswith("a=candidate:"):
            v["candidates"].append(l)
        elif l.startswith("a=ice-ufrag:"):
            v["ufrag"] = l.split(":", 1)[1]
        elif l.startswith("a=ice-pwd:"):
            v["pwd"] = l.split(":", 1)[1]
        elif l.startswith("a=fingerprint:sha-256 "):
            v["fingerprint"] = l.split(" ", 1)[1]
        elif l.startswith("a=ssrc:") and v["ssrc"] is None:
            v["ssrc"] = int(l[7:].split()[0])
    return v


def meta_offer_sdp(aiortc_sdp: str, sess_id: int) -> str:
    """Rebuild aiortc's offer in the shape of Meta's user-initiated offer (doc §5.1)."""
    v = sdp_values(aiortc_sdp)
    cands = [c + " generation 0 network-cost 50" if "generation" not in c else c for c in v["candidates"]]
    return crlf([
        "v=0",
        f"o=- {sess_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE audio",
        "a=msid-semantic: WMS WhatsAppTrack1",
        "a=ice-lite",
        f"m=audio {v['port']} UDP/TLS/RTP/SAVPF {OPUS_PT} {DTMF_PT}",
        f"c=IN IP4 {v['ip']}",
        "a=rtcp:9 IN IP4 0.0.0.0",
        *cands,
        f"a=ice-ufrag:{v['ufrag']}",
        f"a=ice-pwd:{v['pwd']}",
        f"a=fingerprint:sha-256 {v['fingerprint']}",
        "a=setup:actpass",
        "a=mid:audio",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=sendrecv",
        "a=msid:WhatsAppTrack1 WhatsAppTrack1-audio",
        "a=rtcp-mux",
        f"a=rtpmap:{OPUS_PT} opus/48000/2",
        f"a=rtcp-fb:{OPUS_PT} transport-cc",
        f"a=fmtp:{OPUS_PT} minptime=10;useinbandfec=1",
        f"a=rtpmap:{DTMF_PT} telephone-event/8000",
        "a=ptime:20",
        "a=maxptime:20",
        f"a=ssrc:{v['ssrc']} cname:WhatsAppAudioStream1",
        f"a=ssrc:{v['ssrc']} msid:WhatsAppTrack1 WhatsAppTrack1-audio",
    ])


def pre_offer_rewrite(sdp: str) -> str:
    """Before setLocalDescription: make aiortc itself use mid 'audio' and Opus PT 111,
    so its internal state matches the text we hand out."""
    out = []
    for l in sdp_lines(sdp):
        if l.startswith("a=group:BUNDLE "):
            l = "a=group:BUNDLE audio"
        elif l.startswith("a=mid:"):
            l = "a=mid:audio"
        elif l.startswith("m=audio "):
            parts = l.split()
            parts[3:] = [str(OPUS_PT)]
            l = " ".join(parts)
        elif l.startswith("a=rtpmap:96 "):
            l = l.replace("a=rtpmap:96 ", f"a=rtpmap:{OPUS_PT} ")
        elif l.startswith("a=rtpmap:") or l.startswith("a=fmtp:") or l.startswith("a=rtcp-fb:"):
            continue  # codecs other than Opus
        out.append(l)
    return crlf(out)


# --------------------------------------------------------------------------------------
# The peer (shared with business_peer.py)
# --------------------------------------------------------------------------------------
class Peer:
    name = "meta"

    def __init__(self) -> None:
        self.pc = None
        self.track = None
        self.sender = None
        self.dtls = None
        self.wav = None
        self.record_path = None
        self.first_audio = False
        self.connected = asyncio.Event()
        self.closed = False
        self.rx_pts = {}
        self.tx_pts = {}
        self.rx_frames = 0
        self.rx_ssrcs = {}
        self.rx_last_seq = {}
        self.rx_seq_jumps = 0  # out-of-order / lost / non-contiguous sequence numbers
        self.dtmf_seen = set()
        self.dtmf_busy_until = 0.0
        self.dtmf_lock = asyncio.Lock()
        # outgoing RTP sequencing shared by audio and DTMF
        self.tx_seq = None
        self.last_audio_ts = None
        self.last_audio_time = None
        self.tx_ts_origin = None

    # ---- setup -------------------------------------------------------------------------
    def new_pc(self, source: GatedSource, record: str) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = source
        self.record_path = record
        if record:
            self.wav = wave.open(record, "wb")
            self.wav.setnchannels(1)
            self.wav.setsampwidth(2)
            self.wav.setframerate(SAMPLE_RATE)

        @self.pc.on("connectionstatechange")
        async def _on_state():
            st = self.pc.connectionState
            emit("state", state=st)
            if st == "connected" and not self.connected.is_set():
                self.on_connected()
                self.connected.set()
                emit("connected")
            elif st in ("failed",):
                emit("error", message=f"connection {st}")

        @self.pc.on("track")
        def _on_track(track):
            if track.kind == "audio":
                asyncio.ensure_future(self.record_loop(track))

    def opus_only(self, transceiver) -> None:
        caps = RTCRtpSender.getCapabilities("audio")
        transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType.lower() == "audio/opus"])

    def hook_dtls(self, dtls) -> None:
        """Wrap the DTLS transport's RTP entry points (instance attributes):
        _handle_rtp_data (after SRTP unprotect): PT 126 goes to our DTMF decoder,
        first PT 111 packet is reported; _send_rtp (before SRTP protect): one sequence
        counter for audio and DTMF, audio suppressed while a DTMF event plays."""
        self.dtls = dtls
        orig_rx = dtls._handle_rtp_data
        orig_tx = dtls._send_rtp

        async def rx(data: bytes, arrival_time_ms: int) -> None:
            if len(data) >= 12:
                pt = data[1] & 0x7F
                self.rx_pts[pt] = self.rx_pts.get(pt, 0) + 1
                ssrc = struct.unpack("!I", data[8:12])[0]
                seq = struct.unpack("!H", data[2:4])[0]
                self.rx_ssrcs.setdefault(pt, set()).add(ssrc)
                last = self.rx_last_seq.get(ssrc)
                if last is not None and seq != (last + 1) & 0xFFFF:
                    self.rx_seq_jumps += 1
                self.rx_last_seq[ssrc] = seq
                if pt == DTMF_PT:
                    self.on_dtmf_packet(data)
                    return
                if pt == OPUS_PT:
                    if not self.first_audio:
                        self.first_audio = True
                        emit("first_audio", pt=pt)
                elif self.rx_pts[pt] == 1:
                    emit("unexpected_pt", pt=pt)
            await orig_rx(data, arrival_time_ms)

        async def tx(data: bytes) -> None:
            if len(data) >= 12 and not (192 <= data[1] <= 223) and self.sender is not None:
                ssrc = struct.unpack("!I", data[8:12])[0]
                if ssrc == self.sender._ssrc:
                    pt = data[1] & 0x7F
                    if pt != DTMF_PT:
                        if time.monotonic() < self.dtmf_busy_until:
                            return  # DTMF event replaces audio
                        ts = struct.unpack("!I", data[4:8])[0]
                        self.last_audio_ts = ts
                        self.last_audio_time = time.monotonic()
                    self.tx_pts[pt] = self.tx_pts.get(pt, 0) + 1
                    if self.tx_seq is None:
                        self.tx_seq = struct.unpack("!H", data[2:4])[0]
                    data = data[:2] + struct.pack("!H", self.tx_seq) + data[4:]
                    self.tx_seq = (self.tx_seq + 1) & 0xFFFF
            await orig_tx(data)

        dtls._handle_rtp_data = rx
        dtls._send_rtp = tx

    def on_connected(self) -> None:
        pass

    # ---- receive -----------------------------------------------------------------------
    async def record_loop(self, track) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            except Exception as exc:  # pragma: no cover
                emit("error", message=f"recv: {exc}")
                return
            self.rx_frames += 1
            if self.wav is None or self.closed:
                continue
            pcm = frame.to_ndarray()
            ch = len(frame.layout.channels)
            if frame.format.name != "s16":
                emit("error", message=f"unexpected decoded format {frame.format.name}")
                continue
            pcm = pcm.reshape(-1, ch).astype(np.int32).mean(axis=1).astype("<i2")
            if frame.sample_rate != SAMPLE_RATE:
                emit("error", message=f"unexpected decoded rate {frame.sample_rate}")
                continue
            self.wav.writeframes(pcm.tobytes())

    def on_dtmf_packet(self, data: bytes) -> None:
        cc = data[0] & 0x0F
        off = 12 + 4 * cc
        if data[0] & 0x10:  # header extension
            ext_len = struct.unpack("!H", data[off + 2:off + 4])[0]
            off += 4 + 4 * ext_len
        payload = data[off:]
        if len(payload) < 4:
            return
        ev, flags, duration = payload[0], payload[1], struct.unpack("!H", payload[2:4])[0]
        ssrc, ts = struct.unpack("!I", data[8:12])[0], struct.unpack("!I", data[4:8])[0]
        key = (ssrc, ts)
        if key in self.dtmf_seen:
            return
        self.dtmf_seen.add(key)
        digit = DTMF_DIGITS[ev] if ev < len(DTMF_DIGITS) else str(ev)
        emit("dtmf", digit=digit, end=bool(flags & 0x80), marker=bool(data[1] & 0x80),
             duration=duration)

    # ---- send DTMF ---------------------------------------------------------------------
    async def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        if digit.upper() not in DTMF_DIGITS or len(digit) != 1:
            raise ValueError(f"bad DTMF digit {digit!r}")
        if not self.connected.is_set():
            raise RuntimeError("not connected")
        code = DTMF_DIGITS.index(digit.upper())
        async with self.dtmf_lock:
            steps = max(1, duration_ms // 20)
            self.dtmf_busy_until = time.monotonic() + (steps + 3) * 0.02 + 0.04
            # RTP timestamp: the audio timestamp base (48 kHz units) at the event start
            if self.last_audio_ts is not None:
                ts = (self.last_audio_ts + int((time.monotonic() - self.last_audio_time) * SAMPLE_RATE)) & 0xFFFFFFFF
            else:
                if self.tx_ts_origin is None:
                    self.tx_ts_origin = (struct.unpack("!I", np.random.bytes(4))[0], time.monotonic())
                o, t0 = self.tx_ts_origin
                ts = (o + int((time.monotonic() - t0) * SAMPLE_RATE)) & 0xFFFFFFFF
            if self.tx_seq is None:
                self.tx_seq = int(np.random.randint(0, 32768))
            packets = []
            for i in range(steps):
                packets.append((i == 0, False, 160 * (i + 1)))
            for _ in range(3):
                packets.append((False, True, 160 * steps))
            for i, (marker, end, dur) in enumerate(packets):
                payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, dur)
                pkt = RtpPacket(payload_type=DTMF_PT, marker=1 if marker else 0,
                                sequence_number=0, timestamp=ts, ssrc=self.sender._ssrc,
                                payload=payload)
                await self.dtls._send_rtp(pkt.serialize())
                if i < len(packets) - 1:
                    await asyncio.sleep(0.02)

    # ---- commands ----------------------------------------------------------------------
    async def cmd_offer(self, msg: dict) -> None:
        if self.pc is not None:
            raise RuntimeError("offer already made")
        if msg.get("host"):
            HOST_ADDRESSES[:] = [msg["host"]]
        if msg.get("opus_bitrate"):
            encode_like_meta(int(msg["opus_bitrate"]))
        source = WavPlayer(msg["play"]) if msg.get("play") else GatedSine(msg.get("tone_hz", 440))
        self.new_pc(source, msg.get("record"))
        tr = self.pc.addTransceiver(self.track, direction="sendrecv")
        self.sender = tr.sender
        self.opus_only(tr)
        self.ice = make_lite(tr.receiver.transport.transport._connection)
        self.hook_dtls(tr.receiver.transport)
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(RTCSessionDescription(pre_offer_rewrite(offer.sdp), "offer"))
        sdp = meta_offer_sdp(self.pc.localDescription.sdp, int(time.time() * 1000) & 0x7FFFFFFFFFFF)
        emit("offer", sdp=sdp)

    async def cmd_answer(self, msg: dict) -> None:
        if self.pc is None:
            raise RuntimeError("no offer made")
        await self.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
        asyncio.ensure_future(self.report_role())

    async def report_role(self) -> None:
        await self.connected.wait()
        tr = self.dtls.transport
        emit("ice_role", controlling=tr.role == "controlling",
             dtls_role=self.dtls._role, lite=True, **self.ice.lite_stats)

    async def cmd_unmute(self, msg: dict) -> None:
        self.track.unmuted.set()

    async def cmd_mute(self, msg: dict) -> None:
        self.track.unmuted.clear()

    async def cmd_dtmf(self, msg: dict) -> None:
        await self.send_dtmf(str(msg["digit"]), int(msg.get("duration_ms", 100)))
        emit("dtmf_sent", digit=str(msg["digit"]))

    async def cmd_stats(self, msg: dict) -> None:
        emit("stats", rx_pts={str(k): v for k, v in self.rx_pts.items()},
             tx_pts={str(k): v for k, v in self.tx_pts.items()}, rx_frames=self.rx_frames,
             ssrc=self.sender._ssrc if self.sender else None,
             rx_ssrcs={str(k): sorted(v) for k, v in self.rx_ssrcs.items()},
             rx_seq_jumps=self.rx_seq_jumps,
             ice=getattr(getattr(self, "ice", None), "lite_stats", None))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.pc is not None:
            try:
                await asyncio.wait_for(self.pc.close(), 5)
            except Exception as exc:
                log.warning("close: %s", exc)
        if self.wav is not None:
            self.wav.close()
            self.wav = None

    # ---- main loop ---------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        tasks = set()
        while True:
            line = await reader.readline()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
                cmd = msg["cmd"]
            except Exception as exc:
                emit("error", message=f"bad command line: {exc}")
                continue
            if cmd == "close":
                break
            handler = getattr(self, "cmd_" + cmd, None)
            if handler is None:
                emit("error", message=f"unknown command {cmd!r}")
                continue

            async def runcmd(h=handler, m=msg, c=cmd):
                try:
                    await h(m)
                except Exception as exc:
                    log.exception("command %s", c)
                    emit("error", message=f"{c}: {type(exc).__name__}: {exc}")

            # dtmf runs concurrently (it takes ~200 ms); the rest run in order
            if cmd == "dtmf":
                t = asyncio.ensure_future(runcmd())
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            else:
                await runcmd()
        await self.close()
        emit("closed")
        return 0


def main(peer_cls=Peer) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="count", default=0)
    args = ap.parse_args()
    logging.basicConfig(stream=sys.stderr,
                        level=logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING,
                        format=f"[{peer_cls.name}] %(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        rc = asyncio.run(peer_cls().run())
    except KeyboardInterrupt:
        rc = 130
    sys.stdout.flush()
    # skip slow interpreter teardown of av/aiortc threads
    import os
    os._exit(rc)


if __name__ == "__main__":
    main()
