//! The recorder tap of an RTP leg: what we heard and what we sent, as 8 kHz mono PCM.
//!
//! The leg task owns the tap (no lock on the media path) and hands it back in its outcome when
//! it ends. Both buffers are reserved up front for the maximum length, so recording never
//! allocates per packet; audio past the maximum is dropped and flagged.

const RATE: usize = 8000;

#[derive(Debug, Clone)]
pub struct RecordTap {
    received: Vec<i16>,
    sent: Vec<i16>,
    max_samples: usize,
    truncated: bool,
}

impl RecordTap {
    /// Reserves room for `max_seconds` of audio in each direction.
    pub fn new(max_seconds: u32) -> RecordTap {
        let max_samples = RATE * max_seconds as usize;
        RecordTap {
            received: Vec::with_capacity(max_samples),
            sent: Vec::with_capacity(max_samples),
            max_samples,
            truncated: false,
        }
    }

    /// Audio received from the peer.
    pub fn received(&self) -> &[i16] {
        &self.received
    }

    /// Audio we sent to the peer (silence included).
    pub fn sent(&self) -> &[i16] {
        &self.sent
    }

    /// Whether audio was dropped because the maximum length was reached.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    pub fn into_parts(self) -> (Vec<i16>, Vec<i16>) {
        (self.received, self.sent)
    }

    /// Both directions summed (saturating) into one track, for a mono call recording.
    pub fn mixed(&self) -> Vec<i16> {
        let n = self.received.len().max(self.sent.len());
        (0..n)
            .map(|i| {
                let a = self.received.get(i).copied().unwrap_or(0);
                let b = self.sent.get(i).copied().unwrap_or(0);
                a.saturating_add(b)
            })
            .collect()
    }

    pub fn push_received(&mut self, pcm: &[i16]) {
        push_capped(
            &mut self.received,
            pcm,
            self.max_samples,
            &mut self.truncated,
        );
    }

    /// Stands in for audio that never arrived (loss, the peer's silence suppression), so the
    /// received track keeps its real duration.
    pub fn push_received_silence(&mut self, samples: usize) {
        fill_capped(
            &mut self.received,
            samples,
            self.max_samples,
            &mut self.truncated,
        );
    }

    pub fn push_sent(&mut self, pcm: &[i16]) {
        push_capped(&mut self.sent, pcm, self.max_samples, &mut self.truncated);
    }

    pub fn push_sent_silence(&mut self, samples: usize) {
        fill_capped(
            &mut self.sent,
            samples,
            self.max_samples,
            &mut self.truncated,
        );
    }

    /// Pads the received track with silence up to the sent track's length: called when the
    /// first packet arrives, so both tracks start at the same instant.
    pub fn align_received_to_sent(&mut self) {
        let behind = self.sent.len().saturating_sub(self.received.len());
        self.push_received_silence(behind);
    }
}

fn push_capped(buf: &mut Vec<i16>, pcm: &[i16], max: usize, truncated: &mut bool) {
    let room = max - buf.len();
    let n = pcm.len().min(room);
    *truncated |= n < pcm.len();
    buf.extend_from_slice(&pcm[..n]);
}

fn fill_capped(buf: &mut Vec<i16>, samples: usize, max: usize, truncated: &mut bool) {
    let room = max - buf.len();
    let n = samples.min(room);
    *truncated |= n < samples;
    buf.resize(buf.len() + n, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_both_directions_without_reallocating() {
        let mut tap = RecordTap::new(1);
        let cap = (tap.received.capacity(), tap.sent.capacity());
        tap.push_sent(&[1; 160]);
        tap.push_sent(&[2; 160]);
        tap.align_received_to_sent();
        tap.push_received(&[3; 160]);
        tap.push_received_silence(160);
        assert_eq!(tap.received().len(), 640);
        assert_eq!(&tap.received()[..320], &[0; 320][..]);
        assert_eq!(tap.received()[320], 3);
        assert_eq!(tap.sent().len(), 320);
        for _ in 0..100 {
            tap.push_sent(&[5; 160]);
            tap.push_received(&[5; 160]);
        }
        assert_eq!((tap.received.capacity(), tap.sent.capacity()), cap);
        assert_eq!(tap.sent().len(), 8000);
        assert!(tap.is_truncated());
    }

    #[test]
    fn mix_saturates() {
        let mut tap = RecordTap::new(1);
        tap.push_sent(&[30000, 1, 2]);
        tap.push_received(&[30000, -1]);
        assert_eq!(tap.mixed(), [i16::MAX, 0, 2]);
        let (rx, tx) = tap.into_parts();
        assert_eq!((rx.len(), tx.len()), (2, 3));
    }
}
