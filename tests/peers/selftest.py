#!/usr/bin/env python3
"""selftest.py - runs meta_peer.py against business_peer.py and checks:
connected on both sides; meta is ICE-lite (sent no STUN requests, controlled, saw
ICE-CONTROLLING + USE-CANDIDATE from the remote), business is controlling; DTLS
roles server/client; no audio either way before unmute; after unmute a 440 Hz tone
reaches business and a 1000 Hz tone reaches meta (FFT); one DTMF digit each way,
reported exactly once. Bounded: the whole run is cancelled after --timeout seconds
and the children are killed.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable

results = []


def check(name: str, ok: bool, detail: str = "") -> None:
    results.append((name, ok))
    print(f"{'PASS' if ok else 'FAIL'}: {name}{' - ' + detail if detail else ''}", flush=True)


class Child:
    def __init__(self, name: str, script: str) -> None:
        self.name = name
        self.script = script
        self.events = []
        self.cond = asyncio.Condition()
        self.proc = None

    async def start(self, verbose: bool) -> None:
        args = [PY, os.path.join(HERE, self.script)] + (["-v"] if verbose else [])
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=None, limit=1 << 20)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                ev = json.loads(line)
            except ValueError:
                print(f"[{self.name}] non-JSON stdout: {line!r}", flush=True)
                continue
            short = {k: (v[:40] + "..." if isinstance(v, str) and len(v) > 60 else v) for k, v in ev.items()}
            print(f"[{self.name}] {json.dumps(short)}", flush=True)
            async with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        async with self.cond:
            self.events.append({"event": "_eof"})
            self.cond.notify_all()

    def send(self, **msg) -> None:
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())

    def has(self, event: str) -> list:
        return [e for e in self.events if e["event"] == event]

    async def wait(self, event: str, timeout: float = 10.0) -> dict:
        async def _w():
            async with self.cond:
                while True:
                    for e in self.events:
                        if e["event"] == event:
                            return e
                        if e["event"] == "_eof":
                            raise RuntimeError(f"{self.name} exited while waiting for {event}")
                    await self.cond.wait()
        return await asyncio.wait_for(_w(), timeout)

    def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.kill()


def tone_check(path: str, expect_hz: float, label: str) -> None:
    with wave.open(path, "rb") as w:
        rate, n, ch, sw = w.getframerate(), w.getnframes(), w.getnchannels(), w.getsampwidth()
        data = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float64)
    check(f"{label}: WAV format 16-bit mono 48 kHz", (rate, ch, sw) == (48000, 1, 2), f"rate={rate} ch={ch} sw={sw}")
    secs = len(data) / rate if rate else 0
    check(f"{label}: recording has >= 1 s of audio", secs >= 1.0, f"{secs:.2f} s")
    if secs < 0.5:
        return
    # analyse the middle part (skip the Opus/jitter-buffer start-up)
    seg = data[int(0.25 * rate):]
    seg = seg[: rate]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    freqs = np.fft.rfftfreq(len(seg), 1 / rate)
    peak = freqs[int(np.argmax(spec[1:]) + 1)]
    rms = float(np.sqrt(np.mean(seg ** 2)))
    dbfs = 20 * np.log10(rms / 32768 + 1e-12)
    check(f"{label}: dominant frequency {expect_hz:.0f} Hz +-3%", abs(peak - expect_hz) <= 0.03 * expect_hz,
          f"peak {peak:.1f} Hz")
    check(f"{label}: level not silent", dbfs > -30, f"{dbfs:.1f} dBFS")


async def scenario(tmp: str, strip: bool, verbose: bool) -> None:
    tag = "no-cand" if strip else "with-cand"
    meta = Child("meta", "meta_peer.py")
    biz = Child("biz", "business_peer.py")
    meta_wav = os.path.join(tmp, f"meta_heard_{tag}.wav")
    biz_wav = os.path.join(tmp, f"biz_heard_{tag}.wav")
    print(f"=== scenario: business answer {'without candidates (c=0.0.0.0, port 9)' if strip else 'with host candidates'}", flush=True)
    try:
        await meta.start(verbose)
        await biz.start(verbose)
        t0 = time.monotonic()
        meta.send(cmd="offer", tone_hz=440, record=meta_wav)
        offer = (await meta.wait("offer"))["sdp"]
        check(f"[{tag}] offer is CRLF, ice-lite, actpass, 111+126",
              "\r\n" in offer and "a=ice-lite" in offer and "a=setup:actpass" in offer
              and "m=audio" in offer and " UDP/TLS/RTP/SAVPF 111 126" in offer
              and "a=candidate:" in offer and " 127.0.0.1 " in offer)
        biz.send(cmd="accept_offer", sdp=offer, tone_hz=1000, record=biz_wav, strip_candidates=strip)
        answer = (await biz.wait("answer"))["sdp"]
        check(f"[{tag}] answer has setup:active, 111+126", "a=setup:active" in answer and " 111 126" in answer)
        meta.send(cmd="answer", sdp=answer)
        await meta.wait("connected", 10)
        await biz.wait("connected", 10)
        check(f"[{tag}] both connected", True, f"{time.monotonic() - t0:.2f} s after offer")
        mr = await meta.wait("ice_role")
        br = await biz.wait("ice_role")
        check(f"[{tag}] meta ICE role controlled", mr["controlling"] is False)
        check(f"[{tag}] meta lite: sent 0 STUN requests", mr["requests_sent"] == 0, f"{mr}")
        check(f"[{tag}] meta saw ICE-CONTROLLING + USE-CANDIDATE from remote",
              mr["remote_controlling"] > 0 and mr["use_candidate"] > 0 and mr["remote_controlled"] == 0)
        check(f"[{tag}] business ICE role controlling", br["controlling"] is True)
        check(f"[{tag}] DTLS roles meta=server business=client",
              mr["dtls_role"] == "server" and br["dtls_role"] == "client")
        # nothing flows before unmute
        await asyncio.sleep(1.5)
        check(f"[{tag}] no audio to meta before unmute", not meta.has("first_audio"))
        check(f"[{tag}] no audio to business before unmute", not biz.has("first_audio"))
        meta.send(cmd="unmute")
        await biz.wait("first_audio", 5)
        check(f"[{tag}] business hears meta after meta unmute", True)
        await asyncio.sleep(0.5)
        check(f"[{tag}] meta still hears nothing while business muted", not meta.has("first_audio"))
        biz.send(cmd="unmute")
        await meta.wait("first_audio", 5)
        check(f"[{tag}] meta hears business after business unmute", True)
        await asyncio.sleep(1.5)
        meta.send(cmd="dtmf", digit="5")
        biz.send(cmd="dtmf", digit="7")
        await meta.wait("dtmf_sent", 5)
        await biz.wait("dtmf_sent", 5)
        await biz.wait("dtmf", 5)
        await meta.wait("dtmf", 5)
        await asyncio.sleep(0.5)
        bd = [e["digit"] for e in biz.has("dtmf")]
        md = [e["digit"] for e in meta.has("dtmf")]
        check(f"[{tag}] business got DTMF '5' exactly once", bd == ["5"], f"{bd}")
        check(f"[{tag}] meta got DTMF '7' exactly once", md == ["7"], f"{md}")
        meta.send(cmd="stats")
        biz.send(cmd="stats")
        ms = await meta.wait("stats")
        bs = await biz.wait("stats")
        check(f"[{tag}] meta sends only PT 111/126", set(ms["tx_pts"]) == {"111", "126"}, f"{ms['tx_pts']}")
        check(f"[{tag}] business sends only PT 111/126", set(bs["tx_pts"]) == {"111", "126"}, f"{bs['tx_pts']}")
        check(f"[{tag}] meta received only PT 111/126", set(ms["rx_pts"]) == {"111", "126"}, f"{ms['rx_pts']}")
        check(f"[{tag}] business got meta's DTMF on meta's audio SSRC",
              bs["rx_ssrcs"].get("126") == bs["rx_ssrcs"].get("111") == [ms["ssrc"]], f"{bs['rx_ssrcs']}")
        check(f"[{tag}] meta got business's DTMF on business's audio SSRC",
              ms["rx_ssrcs"].get("126") == ms["rx_ssrcs"].get("111") == [bs["ssrc"]], f"{ms['rx_ssrcs']}")
        check(f"[{tag}] one contiguous RTP sequence (audio+DTMF) each way",
              ms["rx_seq_jumps"] == 0 and bs["rx_seq_jumps"] == 0,
              f"jumps meta<-biz {ms['rx_seq_jumps']} biz<-meta {bs['rx_seq_jumps']}")
        meta.send(cmd="close")
        biz.send(cmd="close")
        await meta.wait("closed", 8)
        await biz.wait("closed", 8)
        rc_m = await asyncio.wait_for(meta.proc.wait(), 5)
        rc_b = await asyncio.wait_for(biz.proc.wait(), 5)
        check(f"[{tag}] both exit 0 after close", rc_m == 0 and rc_b == 0, f"meta={rc_m} biz={rc_b}")
        tone_check(biz_wav, 440, f"[{tag}] business heard meta")
        tone_check(meta_wav, 1000, f"[{tag}] meta heard business")
    finally:
        meta.kill()
        biz.kill()


async def role_conflict(verbose: bool) -> None:
    """A plain aioice full agent that wrongly starts CONTROLLED: the lite meta peer must
    answer its ICE-CONTROLLED checks with 487 so it switches to controlling and nominates."""
    sys.path.insert(0, HERE)
    import aioice
    import meta_peer  # noqa: F401  (loopback host candidates)
    print("=== scenario: remote starts as ICE-CONTROLLED (expects 487 -> it becomes controlling)", flush=True)
    meta = Child("meta", "meta_peer.py")
    conn = aioice.Connection(ice_controlling=False)
    try:
        await meta.start(verbose)
        meta.send(cmd="offer", tone_hz=440)
        v = meta_peer.sdp_values((await meta.wait("offer"))["sdp"])
        await conn.gather_candidates()
        lc = conn.local_candidates[0]
        answer = "\r\n".join([
            "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE audio",
            f"m=audio {lc.port} UDP/TLS/RTP/SAVPF 111 126", "c=IN IP4 127.0.0.1",
            f"a=candidate:{lc.to_sdp()}", f"a=ice-ufrag:{conn.local_username}",
            f"a=ice-pwd:{conn.local_password}", "a=fingerprint:sha-256 " + ":".join(["AA"] * 32),
            "a=setup:active", "a=mid:audio", "a=sendrecv", "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2", "a=rtpmap:126 telephone-event/8000", ""])
        meta.send(cmd="answer", sdp=answer)
        conn.remote_username, conn.remote_password = v["ufrag"], v["pwd"]
        await conn.add_remote_candidate(aioice.Candidate.from_sdp(v["candidates"][0][len("a=candidate:"):]))
        await conn.add_remote_candidate(None)
        await asyncio.wait_for(conn.connect(), 8)
        check("[role-conflict] remote ICE completes after switching to controlling",
              conn.ice_controlling is True and len(conn._nominated) == 1)
    finally:
        meta.kill()
        await conn.close()


async def amain(args) -> None:
    await role_conflict(args.verbose)
    with tempfile.TemporaryDirectory(prefix="metapeer-") as tmp:
        await scenario(tmp, strip=True, verbose=args.verbose)
        await scenario(tmp, strip=False, verbose=args.verbose)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=28.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    t0 = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(amain(args), args.timeout))
    except asyncio.TimeoutError:
        check("selftest finished within timeout", False, f"{args.timeout} s")
    except Exception as exc:
        check("selftest ran without exception", False, f"{type(exc).__name__}: {exc}")
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"selftest took {time.monotonic() - t0:.1f} s", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
