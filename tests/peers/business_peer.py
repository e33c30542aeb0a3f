#!/usr/bin/env python3
"""business_peer.py - TEST ONLY: a second aiortc peer that answers meta_peer's offer
the way the whatsip gateway will: full ICE in the controlling role (aiortc picks that
itself when the offer says a=ice-lite), DTLS client (a=setup:active), Opus PT 111,
telephone-event 126/8000, ptime 20.

Commands: {"cmd":"accept_offer","sdp":"...","tone_hz":1000,"record":"/path.wav",
           "strip_candidates":true}  -> {"event":"answer","sdp":"..."}
and unmute / mute / dtmf / stats / close as in meta_peer.py.
"""

import asyncio

from aiortc import RTCSessionDescription

import meta_peer
from meta_peer import DTMF_PT, OPUS_PT, Peer, crlf, emit, sdp_lines


def business_answer_sdp(sdp: str, strip_candidates: bool) -> str:
    """aiortc's answer + what the gateway's answer carries (doc §5.2/§5.4)."""
    out = []
    for l in sdp_lines(sdp):
        if l.startswith("m=audio "):
            parts = l.split()
            if strip_candidates:
                parts[1] = "9"
            parts[3:] = [str(OPUS_PT), str(DTMF_PT)]
            l = " ".join(parts)
        elif l.startswith("c=IN IP4 ") and strip_candidates:
            l = "c=IN IP4 0.0.0.0"
        elif (l.startswith("a=candidate:") or l == "a=end-of-candidates") and strip_candidates:
            continue
        elif l.startswith("a=fingerprint:") and not l.startswith("a=fingerprint:sha-256 "):
            continue
        elif l.startswith("a=fmtp:%d " % OPUS_PT):
            continue
        out.append(l)
        if l.startswith("a=rtpmap:%d " % OPUS_PT):
            out.append(f"a=fmtp:{OPUS_PT} minptime=10;useinbandfec=1")
            out.append(f"a=rtpmap:{DTMF_PT} telephone-event/8000")
            out.append("a=ptime:20")
    return crlf(out)


class BusinessPeer(Peer):
    name = "business"

    async def cmd_accept_offer(self, msg: dict) -> None:
        if self.pc is not None:
            raise RuntimeError("already answered")
        self.new_pc(meta_peer.GatedSine(msg.get("tone_hz", 1000)), msg.get("record"))
        await self.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
        tr = self.pc.getTransceivers()[0]
        tr.direction = "sendrecv"
        tr.sender.replaceTrack(self.track)
        self.sender = tr.sender
        self.opus_only(tr)
        self.hook_dtls(tr.receiver.transport)
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        sdp = business_answer_sdp(self.pc.localDescription.sdp, bool(msg.get("strip_candidates", False)))
        emit("answer", sdp=sdp)
        asyncio.ensure_future(self.report_role())

    async def report_role(self) -> None:
        await self.connected.wait()
        emit("ice_role", controlling=self.dtls.transport.role == "controlling",
             dtls_role=self.dtls._role, lite=False)

    async def cmd_stats(self, msg: dict) -> None:
        emit("stats", rx_pts={str(k): v for k, v in self.rx_pts.items()},
             tx_pts={str(k): v for k, v in self.tx_pts.items()}, rx_frames=self.rx_frames,
             ssrc=self.sender._ssrc if self.sender else None,
             rx_ssrcs={str(k): sorted(v) for k, v in self.rx_ssrcs.items()},
             rx_seq_jumps=self.rx_seq_jumps)


if __name__ == "__main__":
    meta_peer.main(BusinessPeer)
