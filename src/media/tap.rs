//! The recorder's view of a bridged call: what each side heard, as 8 kHz PCM, one 20 ms frame
//! per bridge tick.
//!
//! The bridge task owns the [`Tap`]; the recorder holds the receiver. Frames are plain arrays
//! sent by value and `try_send` never waits, so a slow or stuck recorder costs frames (counted
//! in [`Tap::dropped`]), never the call's audio.

use tokio::sync::mpsc;

use super::transcode::G711_FRAME;

/// One tick of the call. A side that got no audio this tick (DTMF, before accept, on hold)
/// is digital silence, so both tracks keep real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapFrame {
    /// Counts frames handed to the channel, dropped ones included: a gap means lost frames.
    pub index: u64,
    /// What the phone heard: WhatsApp's audio decoded, or the silence we sent.
    pub to_phone: [i16; G711_FRAME],
    /// What WhatsApp heard: the phone's audio, or the comfort noise we sent.
    pub to_whatsapp: [i16; G711_FRAME],
}

impl TapFrame {
    const SILENT: TapFrame = TapFrame {
        index: 0,
        to_phone: [0; G711_FRAME],
        to_whatsapp: [0; G711_FRAME],
    };
}

pub struct Tap {
    tx: mpsc::Sender<TapFrame>,
    /// Boxed so that a `Tap` is small enough to travel in a command.
    frame: Box<TapFrame>,
    has_phone: bool,
    has_whatsapp: bool,
    dropped: u64,
}

impl Tap {
    /// `frames` of slack between the bridge and the recorder (50 per second of call).
    pub fn channel(frames: usize) -> (Tap, mpsc::Receiver<TapFrame>) {
        let (tx, rx) = mpsc::channel(frames);
        let tap = Tap {
            tx,
            frame: Box::new(TapFrame::SILENT),
            has_phone: false,
            has_whatsapp: false,
            dropped: 0,
        };
        (tap, rx)
    }

    pub fn heard_by_phone(&mut self, pcm: &[i16; G711_FRAME]) {
        // A second frame for the same side before a flush is the next tick (a catch-up burst).
        if self.has_phone {
            self.flush();
        }
        self.frame.to_phone = *pcm;
        self.has_phone = true;
    }

    pub fn heard_by_whatsapp(&mut self, pcm: &[i16; G711_FRAME]) {
        if self.has_whatsapp {
            self.flush();
        }
        self.frame.to_whatsapp = *pcm;
        self.has_whatsapp = true;
    }

    /// Hands over the tick's frame, if either side got audio. Called once per bridge wake-up.
    pub fn flush(&mut self) {
        if !(self.has_phone || self.has_whatsapp) {
            return;
        }
        let index = self.frame.index;
        if self.tx.try_send(*self.frame).is_err() {
            self.dropped += 1;
        }
        *self.frame = TapFrame {
            index: index + 1,
            ..TapFrame::SILENT
        };
        self.has_phone = false;
        self.has_whatsapp = false;
    }

    /// Frames the recorder did not take in time (or after it went away).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether the recorder dropped its receiver.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_frame_per_tick_with_the_missing_side_silent() {
        let (mut tap, mut rx) = Tap::channel(8);
        tap.heard_by_phone(&[1; G711_FRAME]);
        tap.heard_by_whatsapp(&[2; G711_FRAME]);
        tap.flush();
        // Before accept only the phone hears anything.
        tap.heard_by_phone(&[3; G711_FRAME]);
        tap.flush();
        tap.flush(); // nothing new: no frame
        let a = rx.try_recv().unwrap();
        let b = rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err());
        assert_eq!((a.index, a.to_phone[0], a.to_whatsapp[0]), (0, 1, 2));
        assert_eq!((b.index, b.to_phone[0], b.to_whatsapp[0]), (1, 3, 0));
    }

    #[test]
    fn catch_up_ticks_become_separate_frames() {
        let (mut tap, mut rx) = Tap::channel(8);
        for i in 0..3 {
            tap.heard_by_whatsapp(&[i; G711_FRAME]);
            tap.heard_by_phone(&[10 + i; G711_FRAME]);
        }
        tap.flush();
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|f| (f.index, f.to_whatsapp[0], f.to_phone[0]))
            .collect();
        assert_eq!(got, [(0, 0, 10), (1, 1, 11), (2, 2, 12)]);
    }

    #[test]
    fn a_full_or_gone_recorder_costs_frames_not_the_call() {
        let (mut tap, mut rx) = Tap::channel(1);
        for _ in 0..3 {
            tap.heard_by_phone(&[5; G711_FRAME]);
            tap.flush();
        }
        assert_eq!(tap.dropped(), 2);
        // The index counts the dropped frames, so the recorder sees the gap.
        assert_eq!(rx.try_recv().unwrap().index, 0);
        tap.heard_by_phone(&[5; G711_FRAME]);
        tap.flush();
        assert_eq!(rx.try_recv().unwrap().index, 3);
        drop(rx);
        assert!(tap.is_closed());
        tap.heard_by_phone(&[5; G711_FRAME]);
        tap.flush();
        assert_eq!(tap.dropped(), 3);
    }
}
