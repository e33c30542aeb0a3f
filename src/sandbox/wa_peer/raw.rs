//! [`RawPeer`]: the peer of [`super::WaPeer`] without its media task, for load that must cost
//! little on the sending side. It offers exactly as `WaPeer` does, sends Opus packets its
//! owner has encoded already, and hands each packet it receives, with its arrival time, to a
//! function of the owner's (the media bench only counts and time-stamps them).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{PeerConnection, StatsSelector};

use super::{
    rtp_packet, set_remote_answer, wait_for_event, Parts, WaPeerError, WaPeerEvent, DTMF_PT,
    META_OPUS_FMTP, OPUS_PT,
};

pub struct RawPeer {
    pc: Box<dyn PeerConnection>,
    sender: RawSender,
    events: mpsc::UnboundedReceiver<WaPeerEvent>,
}

/// Writes into a [`RawPeer`]'s track; cheap to clone into a feeding task.
#[derive(Clone)]
pub struct RawSender {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
}

impl RawPeer {
    /// A user calls the business: the peer and its offer, as [`super::WaPeer::offer`] makes
    /// them. `on_rtp` runs on the track's reader task for every RTP packet received.
    pub async fn offer<F>(bind_ip: IpAddr, on_rtp: F) -> Result<(RawPeer, String), WaPeerError>
    where
        F: Fn(Instant, rtp::Packet) + Send + Sync + 'static,
    {
        let forward = move |at, packet| {
            on_rtp(at, packet);
            true
        };
        let mut parts = Parts::build(
            bind_ip,
            OPUS_PT,
            META_OPUS_FMTP,
            Some(DTMF_PT),
            false,
            forward,
        )
        .await?;
        match parts.make_offer().await {
            Ok(sdp) => {
                let peer = RawPeer {
                    pc: parts.pc,
                    sender: RawSender {
                        track: parts.track,
                        ssrc: parts.ssrc,
                    },
                    events: parts.events,
                };
                Ok((peer, sdp))
            }
            Err(e) => {
                let _ = parts.pc.close().await;
                Err(e)
            }
        }
    }

    /// Takes the business's answer to our offer.
    pub async fn accept_answer(&self, answer_sdp: &str) -> Result<(), WaPeerError> {
        set_remote_answer(&*self.pc, answer_sdp).await
    }

    pub fn sender(&self) -> &RawSender {
        &self.sender
    }

    /// Connection events only: a raw peer reports neither audio nor digits.
    pub fn events(&mut self) -> &mut mpsc::UnboundedReceiver<WaPeerEvent> {
        &mut self.events
    }

    /// Waits up to `limit` for the connection to settle: [`WaPeerEvent::Connected`] once ICE
    /// and DTLS are up, or the `Failed` or `Closed` that came first.
    pub async fn settled(&mut self, limit: Duration) -> Result<WaPeerEvent, WaPeerError> {
        let settles = |e: &WaPeerEvent| {
            matches!(
                e,
                WaPeerEvent::Connected | WaPeerEvent::Failed(_) | WaPeerEvent::Closed
            )
        };
        wait_for_event(&mut self.events, limit, settles).await
    }

    /// The SRTP protection profile DTLS settled on; `None` before there is a transport.
    pub async fn srtp_cipher(&self) -> Option<String> {
        let stats = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        stats.transport().map(|t| t.srtp_cipher.clone())
    }

    pub async fn close(self) {
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "closing the raw sandbox peer");
        }
    }
}

impl RawSender {
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sends one Opus packet as Meta does (PT 111, 48 kHz clock); `payload` is encoded already.
    pub async fn send_opus(
        &self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) -> Result<(), WaPeerError> {
        let packet = rtp_packet(self.ssrc, OPUS_PT, sequence, timestamp, marker, payload);
        self.track.write_rtp(packet).await?;
        Ok(())
    }
}
