#!/usr/bin/env python3
"""pesq_score.py - speech references and ITU-T P.862 narrowband scores for the media tests.

  pesq_score.py reference OUT.wav --say VOICE TEXT [--say VOICE TEXT ...]
      espeak-ng says each TEXT in its VOICE; the utterances are joined, resampled to 8 kHz,
      peak-normalised, padded with PAD_SECONDS at both ends and laid over a white noise floor
      (fixed seed, so every run makes the same file). Prints {"seconds": s}.

  pesq_score.py score REFERENCE.wav DEGRADED.wav
      Brings both to 8 kHz mono, finds where the reference starts inside the degraded
      recording (which may begin with silence, end with a tail, or hold comfort noise around
      the utterance), cuts the degraded signal to the reference's length from there, and
      prints {"mos_lqo": x, "delay_s": d, "correlation": c} with x = pesq(8000, ref, deg, "nb").

The reference's noise floor is there because G.711 quantisation noise in digital-zero pauses
is audible: on noise-free synthetic speech G.711 alone scores only about 3.95-4.15 (4.14 for
the tests' reference), under the -60 dBFS floor about 4.37-4.41 (4.41), a ceiling that leaves
room to see what else a path costs.

WAV input: 16-bit PCM, any rate and channel count. Output JSON goes to stdout, one line.
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
from pesq import pesq
from scipy.signal import correlate, resample_poly

RATE = 8000
PAD_SECONDS = 0.5
PEAK_DBFS = -6.0
NOISE_DBFS = -60.0
NOISE_SEED = 862
FULL_SCALE = 32768.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ref = sub.add_parser("reference", help="make a speech reference with espeak-ng")
    ref.add_argument("out")
    ref.add_argument("--say", nargs=2, action="append", required=True, metavar=("VOICE", "TEXT"))
    ref.add_argument("--noise-dbfs", type=float, default=NOISE_DBFS)
    sc = sub.add_parser("score", help="PESQ narrowband MOS-LQO of a degraded recording")
    sc.add_argument("reference")
    sc.add_argument("degraded")
    args = ap.parse_args()
    if args.cmd == "reference":
        result = make_reference(Path(args.out), args.say, args.noise_dbfs)
    else:
        result = score(read_wav_8k(Path(args.reference)), read_wav_8k(Path(args.degraded)))
    print(json.dumps(result))
    return 0


def make_reference(out: Path, utterances: list, noise_dbfs: float) -> dict:
    speech = np.concatenate([speak(voice, text) for voice, text in utterances])
    speech *= FULL_SCALE * 10 ** (PEAK_DBFS / 20) / np.max(np.abs(speech))
    pad = np.zeros(int(PAD_SECONDS * RATE))
    signal = np.concatenate([pad, speech, pad])
    # White noise at this RMS relative to full scale (a full-scale square wave is 0 dBFS).
    noise = np.random.default_rng(NOISE_SEED).standard_normal(len(signal))
    signal += noise * FULL_SCALE * 10 ** (noise_dbfs / 20)
    write_wav(out, signal)
    return {"seconds": len(signal) / RATE}


def speak(voice: str, text: str) -> np.ndarray:
    """espeak-ng's output (22050 Hz) at RATE."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), text], check=True)
        return read_wav_8k(wav)


def score(ref: np.ndarray, deg: np.ndarray) -> dict:
    start, corr = locate(ref, deg)
    window = np.zeros(len(ref))
    lo, hi = max(start, 0), min(start + len(ref), len(deg))
    if hi > lo:
        window[lo - start:hi - start] = deg[lo:hi]
    return {
        "mos_lqo": float(pesq(RATE, ref, window, "nb")),
        "delay_s": start / RATE,
        "correlation": corr,
        "covered": max(hi - lo, 0) / len(ref),
    }


def locate(ref: np.ndarray, deg: np.ndarray) -> tuple:
    """(index in `deg` where `ref` starts, normalised correlation there). PESQ aligns in time
    itself, but only within the pair it is given: the degraded signal must hold the whole
    utterance and not much else."""
    c = correlate(deg, ref, mode="full", method="fft")
    peak = int(np.argmax(c))
    start = peak - (len(ref) - 1)
    lo, hi = max(start, 0), min(start + len(ref), len(deg))
    seg = deg[lo:hi]
    energy = math.sqrt(float(np.dot(ref, ref)) * float(np.dot(seg, seg)))
    return start, (float(c[peak]) / energy if energy > 0 else 0.0)


def read_wav_8k(path: Path) -> np.ndarray:
    """A 16-bit PCM WAV as mono float64 samples (int16 scale) at RATE."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: {8 * w.getsampwidth()}-bit samples; expected 16-bit PCM")
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    x = pcm.reshape(-1, channels).astype(np.float64).mean(axis=1)
    if rate == RATE:
        return x
    g = math.gcd(rate, RATE)
    return resample_poly(x, RATE // g, rate // g)


def write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


if __name__ == "__main__":
    sys.exit(main())
