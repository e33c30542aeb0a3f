//! SDP texts shared by the tests of wa_sdp and wa_sdp_build.

/// §5.1 "Meta's offer on a user-initiated call", verbatim except the closing `...` elision.
pub const META_OFFER: &str = "v=0
o=- 7602563789789945080 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE audio
a=msid-semantic: WMS 6932bc1c-db1a-4abe-b437-0c4168be8a13
a=ice-lite
m=audio 40012 UDP/TLS/RTP/SAVPF 111 126
c=IN IP4 31.13.65.60
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1972637320 1 udp 2113937151 31.13.65.60 40012 typ host generation 0 network-cost 50 ufrag 6k2qP1R6kBfI/2
a=candidate:1652262791 1 udp 2113939711 2a03:2880:f211:cf:face:b00c:0:6443 40012 typ host generation 0 network-cost 50 ufrag 6k2qP1R6kBfI/2
a=ice-ufrag:6k2qP1R6kBfI/2
a=ice-pwd:UApvJw3NcwFRDvIMKdM0vWCdlXah25E9
a=fingerprint:sha-256 1B:B6:6B:40:A5:0B:8C:75:0D:8C:CB:90:2F:99:74:1E:26:45:AE:AF:45:C1:51:60:8F:73:C9:2D:10:6D:8A:88
a=setup:actpass
a=mid:audio
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:126 telephone-event/8000
a=ssrc:4208138518 cname:gAXq2V9TKltrnapv
";

/// The newer offer of §5.1 (FreeSWITCH #2904), assembled from the quoted lines; CRLF.
pub const META_OFFER_2025: &str = "v=0\r\no=- 1151952413460744286 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE audio\r\na=msid-semantic: WMS WhatsAppTrack1\r\na=ice-lite\r\n\
m=audio 3484 UDP/TLS/RTP/SAVPF 111 126\r\nc=IN IP4 157.240.227.51\r\n\
a=candidate:3187290138 1 udp 2122260223 157.240.227.51 3484 typ host generation 0\r\n\
a=candidate:2170425698 1 udp 2122262783 2a03:2880:f23d:1c5:face:b00c:0:699c 3484 typ host generation 0\r\n\
a=ice-ufrag:Q8pLw1Zr\r\na=ice-pwd:p3n8WzLxQbV7tY2kJd9RfH6m\r\n\
a=fingerprint:sha-256 0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9\r\n\
a=setup:actpass\r\na=mid:audio\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1\r\n\
a=rtpmap:126 telephone-event/8000\r\na=ptime:20\r\na=maxptime:20\r\n\
a=ssrc:1349741820 cname:WhatsAppAudioStream1\r\na=ssrc:1349741820 msid:WhatsAppTrack1 WhatsAppTrack1-audio\r\n";

/// Meta's answer to a business-initiated offer as §5.1 describes it.
pub const META_ANSWER: &str = "v=0\r\no=- 4990366744139069573 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE audio\r\na=ice-lite\r\nm=audio 3482 UDP/TLS/RTP/SAVPF 111 9 0 8 110 126\r\nc=IN IP4 157.240.0.10\r\n\
a=candidate:1 1 udp 2113937151 157.240.0.10 3482 typ host generation 0\r\n\
a=candidate:2 1 udp 2113939711 2a03:2880:f0ff:c:face:b00c:0:3 3482 typ host generation 0\r\n\
a=ice-ufrag:mEtA\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 AA:BB:CC:DD\r\na=setup:active\r\na=mid:audio\r\na=sendrecv\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\na=ssrc:777 cname:WhatsAppAudioStream1\r\n";

/// Swap one line of the §5.1 offer (`from` must occur in it).
pub fn offer_with(from: &str, to: &str) -> String {
    assert!(META_OFFER.contains(from), "{from:?} not in fixture");
    META_OFFER.replacen(from, to, 1)
}
