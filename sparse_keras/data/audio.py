"""Audio features, resampling and augmentation shared by the GSC and FSDD pipelines.

Everything on the hot path is a pure TensorFlow op, so it runs inside a `tf.data`
graph (and inside an exported model) without `py_function`. The features follow the
paper's code (numenta/htmpapers, `audio_transforms.py`, which calls librosa):

1. pad (zeros at the end) or crop a clip to 16,000 samples (1 s at 16 kHz);
2. STFT with n_fft 2048, hop 512, a periodic Hann window and librosa-style centring
   (reflect padding of n_fft // 2 samples on each side) → 32 frames × 1025 bins;
3. power spectrum `|STFT|²` through 32 Slaney-style mel filters (librosa's defaults:
   fmin 0, fmax sr / 2, Slaney area normalisation), built here in NumPy;
4. `power_to_db` relative to the clip's maximum, `amin` 1e-10, floored 80 dB below
   the maximum → values in [−80, 0].

Orientation: the paper's tensors are librosa's `[mel, frames]` fed to the CNN as
`[1, 32, 32]` (channels first), i.e. mel bands are image rows and time is columns.
In Keras' channels-last layout that is `[mel=32, time=32, 1]`, used throughout.

Augmentation (training only) follows the same code, each transform applied with
probability 0.5 and in this order:

- amplitude × U(0.7, 1.1) on the waveform;
- speed/pitch change: the waveform is resampled by linear interpolation at positions
  `i / (1 + s)`, s ~ U(−0.2, 0.2) (s > 0 slows down and lowers the pitch), keeping
  16,000 samples. The clip is padded to 16,000 samples *before* resampling (the paper's
  code pads after), so the batch has one shape; the two differ only in the one
  interpolated sample at the clip's original end;
- time stretch by rate r = 1 + s, s ~ U(−0.2, 0.2), on the STFT: a phase vocoder
  (as librosa's `phase_vocoder`) reads frame positions `t · r`, interpolating
  magnitudes linearly between neighbouring frames. The features keep only the
  magnitude, so the vocoder's phase accumulation is not computed; the result is
  identical to `|librosa.phase_vocoder(stft, rate=r)|`. r > 1 shortens (speeds up)
  the sound; the frame count is then padded or cropped back to 32;
- time shift by an integer number of STFT frames in [−8, 8] (zeros enter at the edge).
  A positive shift here delays the sound; the paper's code uses the opposite sign
  convention, which is immaterial because the shift is drawn symmetrically.

The random draws come from stateless RNG ops keyed by an explicit seed, so a
pipeline is reproducible given its seed (see `sample_augmentation`).

WAV files are read by `sparse_keras.data.wav`; `sparse_keras.data.pipeline` turns a
table of clips into the `tf.data` pipelines.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 32
NUM_FRAMES = 1 + CLIP_SAMPLES // HOP_LENGTH  # 32 with centring
AMIN = 1e-10
TOP_DB = 80.0
FEATURE_SHAPE = (N_MELS, NUM_FRAMES, 1)

AUGMENT_PROBABILITY = 0.5
AMPLITUDE_RANGE = (0.7, 1.1)
MAX_SPEED_SCALE = 0.2
MAX_STRETCH_SCALE = 0.2
MAX_SHIFT_FRAMES = 8


# --------------------------------------------------------------------------- features


def fix_length(waveforms: tf.Tensor, length: int = CLIP_SAMPLES, align: str = "start") -> tf.Tensor:
    """Pads with zeros or crops the last axis to `length` samples.

    Args:
        waveforms: float tensor `[..., samples]`.
        length: Target number of samples.
        align: "start" keeps the beginning and pads/crops at the end (the paper's
            `FixAudioLength`); "center" pads or crops both ends equally (extra sample
            at the end).

    Returns:
        Tensor `[..., length]`.
    """
    if align not in ("start", "center"):
        raise ValueError(f"align must be 'start' or 'center', got {align!r}.")
    waveforms = tf.convert_to_tensor(waveforms)
    n = tf.shape(waveforms)[-1]
    if align == "start":
        cropped = waveforms[..., :length]
        pad_before = tf.constant(0)
    else:
        crop_start = tf.maximum(n - length, 0) // 2
        cropped = waveforms[..., crop_start : crop_start + length]
        pad_before = tf.maximum(length - n, 0) // 2
    pad_after = length - tf.shape(cropped)[-1] - pad_before
    rank = tf.rank(cropped)
    paddings = tf.concat(
        [tf.zeros([rank - 1, 2], tf.int32), tf.reshape(tf.stack([pad_before, pad_after]), [1, 2])],
        axis=0,
    )
    out = tf.pad(cropped, paddings)
    return tf.ensure_shape(out, waveforms.shape[:-1].concatenate([length]))


def _hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    # Slaney's auditory-toolbox scale: linear below 1 kHz, logarithmic above.
    freqs = np.asarray(freqs, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    mels = freqs / f_sp
    log_region = freqs >= min_log_hz
    mels[log_region] = min_log_mel + np.log(freqs[log_region] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    freqs = f_sp * mels
    log_region = mels >= min_log_mel
    freqs[log_region] = min_log_hz * np.exp(logstep * (mels[log_region] - min_log_mel))
    return freqs


def mel_filterbank(
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Slaney-style triangular mel filters with Slaney (area) normalisation.

    Equal to `librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)` with
    its defaults (htk=False, norm="slaney"), computed without librosa.

    Args:
        sample_rate: Audio sample rate in Hz.
        n_fft: FFT size; the filters cover its `1 + n_fft // 2` bins.
        n_mels: Number of mel bands.
        fmin: Lowest band edge in Hz.
        fmax: Highest band edge in Hz; default `sample_rate / 2`.

    Returns:
        float32 array `[n_mels, 1 + n_fft // 2]`.
    """
    fmax = sample_rate / 2.0 if fmax is None else fmax
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel([fmin])[0], _hz_to_mel([fmax])[0], n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Area normalisation: every filter has the same integral over frequency.
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


_MEL_MATRIX = mel_filterbank()  # [32, 1025]


def stft_magnitude(waveforms: tf.Tensor) -> tf.Tensor:
    """Centred STFT magnitudes, librosa-style.

    Args:
        waveforms: float32 `[batch, samples]` (16,000 samples for the paper's clips).

    Returns:
        float32 `[batch, frames, 1 + n_fft // 2]` = `[batch, 32, 1025]` for 1-s clips.
    """
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    # librosa centres frame t on sample t * hop by reflect-padding n_fft // 2 each side.
    padded = tf.pad(waveforms, [[0, 0], [N_FFT // 2, N_FFT // 2]], mode="REFLECT")
    stft = tf.signal.stft(
        padded,
        frame_length=N_FFT,
        frame_step=HOP_LENGTH,
        fft_length=N_FFT,
        window_fn=tf.signal.hann_window,  # periodic, like librosa's "hann"
        pad_end=False,
    )
    return tf.abs(stft)


def log_mel_from_magnitude(magnitude: tf.Tensor) -> tf.Tensor:
    """Mel power spectrogram in dB relative to each clip's maximum.

    Args:
        magnitude: STFT magnitudes `[batch, frames, 1025]`.

    Returns:
        float32 `[batch, 32, frames, 1]` (mel rows, time columns), values in [−80, 0].
    """
    power = tf.square(magnitude)
    mel = tf.einsum("btf,mf->bmt", power, tf.constant(_MEL_MATRIX))
    db = (10.0 / np.log(10.0)) * tf.math.log(tf.maximum(mel, AMIN))
    # log is monotonic, so the dB of the clip maximum is the maximum of the dB values:
    # subtracting it is librosa's `ref=np.max`, and the maximum comes out exactly 0.
    db -= tf.reduce_max(db, axis=[1, 2], keepdims=True)
    return tf.maximum(db, -TOP_DB)[..., None]


def log_mel(waveforms: tf.Tensor) -> tf.Tensor:
    """The paper's 32×32 log-mel features of 16 kHz waveforms.

    Args:
        waveforms: float32 `[batch, samples]` or a single clip `[samples]`, 16 kHz,
            in [−1, 1]; padded with zeros or cropped to 16,000 samples first.

    Returns:
        float32 `[batch, 32, 32, 1]` (or `[32, 32, 1]` for a single clip):
        `[mel, time, channel]`, values in [−80, 0] dB relative to the clip maximum.

    Example:

    >>> features = log_mel(tf.zeros([2, 16000]))
    >>> features.shape
    TensorShape([2, 32, 32, 1])
    """
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    single = waveforms.shape.rank == 1
    if single:
        waveforms = waveforms[None]
    features = log_mel_from_magnitude(stft_magnitude(fix_length(waveforms)))
    return features[0] if single else features


# --------------------------------------------------------------------------- resampling


def lowpass_filter(
    up: int, down: int, half_len_factor: int = 10, kaiser_beta: float = 5.0
) -> np.ndarray:
    """Windowed-sinc anti-aliasing filter for rational resampling by `up / down`.

    Kaiser window (β = 5), cutoff at the lower of the two Nyquist frequencies,
    `2 · half_len_factor · max(up, down) + 1` taps, unit DC gain times `up` (to make
    up for the zeros inserted between samples). Same design as
    `scipy.signal.resample_poly`'s default.

    Returns:
        float64 taps, symmetric, odd length.
    """
    max_rate = max(up, down)
    half_len = half_len_factor * max_rate
    n = np.arange(-half_len, half_len + 1, dtype=np.float64)
    cutoff = 1.0 / max_rate  # as a fraction of the upsampled Nyquist frequency
    taps = cutoff * np.sinc(cutoff * n) * np.kaiser(2 * half_len + 1, kaiser_beta)
    return taps / taps.sum() * up


def resample_poly(signal: tf.Tensor, up: int, down: int) -> tf.Tensor:
    """Band-limited polyphase resampling of a 1-D signal by `up / down`, in TF.

    Inserts `up − 1` zeros between samples, low-pass filters (see `lowpass_filter`),
    keeps every `down`-th sample. The output has `ceil(len · up / down)` samples and
    matches `scipy.signal.resample_poly(signal, up, down)` (zero padding at the edges).
    Meant for small ratios such as FSDD's 8 → 16 kHz (up 2, down 1): the work grows
    with `up · max(up, down)`.

    Args:
        signal: float32 `[samples]`.
        up: Integer upsampling factor.
        down: Integer downsampling factor.

    Returns:
        float32 `[ceil(samples · up / down)]`.
    """
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be positive integers, got up={up}, down={down}.")
    signal = tf.convert_to_tensor(signal, tf.float32)
    if up == down:
        return signal
    n = tf.shape(signal)[0]
    stuffed = tf.reshape(
        tf.concat([signal[:, None], tf.zeros([n, up - 1], tf.float32)], axis=1), [-1]
    )
    taps = tf.constant(lowpass_filter(up, down)[:, None, None], tf.float32)
    # The filter is symmetric and odd-length, so "SAME" cross-correlation is the
    # zero-delay convolution.
    filtered = tf.nn.conv1d(stuffed[None, :, None], taps, stride=1, padding="SAME")[0, :, 0]
    out_len = (n * up + down - 1) // down
    return filtered[::down][:out_len]


# --------------------------------------------------------------------------- augmentation


def change_amplitude(waveforms: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """Scales each waveform: `[batch, samples]` × `factor[batch]`."""
    return waveforms * tf.convert_to_tensor(factor, tf.float32)[:, None]


def change_speed(waveforms: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """Speed and pitch change by linear-interpolation resampling; length kept.

    Output sample i reads the input at position `i / (1 + scale)`: `scale` > 0
    slows the clip down and lowers its pitch by the factor `1 + scale`. Positions past
    the end give zeros (the clip is padded back to its length, as the paper's code
    does with `np.interp` followed by `FixAudioLength`).

    Args:
        waveforms: float32 `[batch, samples]`.
        scale: float32 `[batch]`, e.g. U(−0.2, 0.2); 0 leaves a clip unchanged.

    Returns:
        float32 `[batch, samples]`.
    """
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    n = tf.shape(waveforms)[1]
    # float64 positions: in float32, i / (1 + s) is off by up to ~1e-3 samples near the end.
    step = 1.0 / (1.0 + tf.cast(scale, tf.float64))
    positions = tf.cast(tf.range(n), tf.float64)[None, :] * step[:, None]
    base = tf.floor(positions)
    frac = tf.cast(positions - base, tf.float32)
    i0 = tf.minimum(tf.cast(base, tf.int32), n - 1)
    i1 = tf.minimum(i0 + 1, n - 1)
    left = tf.gather(waveforms, i0, batch_dims=1)
    right = tf.gather(waveforms, i1, batch_dims=1)
    out = left + frac * (right - left)
    return tf.where(positions < tf.cast(n, tf.float64), out, 0.0)


def stretch_frames(magnitude: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
    """Time stretch of STFT magnitudes (phase-vocoder magnitudes); frame count kept.

    Output frame t interpolates input frames at position `t · rate`, like
    `librosa.phase_vocoder(stft, rate=rate)`, whose magnitudes this equals; frames
    past the end of the input are zero. `rate` > 1 shortens the sound by that factor.

    Args:
        magnitude: float32 `[batch, frames, bins]`.
        rate: float32 `[batch]`, e.g. 1 + U(−0.2, 0.2); 1 leaves the input unchanged.

    Returns:
        float32 `[batch, frames, bins]`.
    """
    magnitude = tf.convert_to_tensor(magnitude, tf.float32)
    frames = tf.shape(magnitude)[1]
    # Two zero frames at the end: interpolation just past the last frame fades to 0.
    padded = tf.pad(magnitude, [[0, 0], [0, 2], [0, 0]])
    positions = (
        tf.cast(tf.range(frames), tf.float32)[None, :]
        * tf.convert_to_tensor(rate, tf.float32)[:, None]
    )
    base = tf.floor(positions)
    alpha = (positions - base)[..., None]
    valid = positions < tf.cast(frames, tf.float32)
    i0 = tf.where(valid, tf.cast(base, tf.int32), frames)  # frame `frames` is a zero frame
    left = tf.gather(padded, i0, batch_dims=1)
    right = tf.gather(padded, i0 + 1, batch_dims=1)
    out = (1.0 - alpha) * left + alpha * right
    return tf.where(valid[..., None], out, 0.0)


def shift_frames(magnitude: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Shifts STFT frames in time by an integer number of frames; zeros enter.

    Args:
        magnitude: float32 `[batch, frames, bins]`.
        shift: int32 `[batch]`; output frame t is input frame `t − shift` (positive
            values delay the sound).

    Returns:
        float32 `[batch, frames, bins]`.
    """
    magnitude = tf.convert_to_tensor(magnitude, tf.float32)
    frames = tf.shape(magnitude)[1]
    source = tf.range(frames)[None, :] - tf.convert_to_tensor(shift, tf.int32)[:, None]
    valid = (source >= 0) & (source < frames)
    out = tf.gather(magnitude, tf.clip_by_value(source, 0, frames - 1), batch_dims=1)
    return tf.where(valid[..., None], out, 0.0)


def identity_augmentation(batch_size: int | tf.Tensor) -> dict[str, tf.Tensor]:
    """Augmentation parameters that change nothing (see `sample_augmentation`)."""
    return {
        "amplitude": tf.ones([batch_size]),
        "speed": tf.zeros([batch_size]),
        "stretch": tf.ones([batch_size]),
        "shift": tf.zeros([batch_size], tf.int32),
    }


def sample_augmentation(
    batch_size: int | tf.Tensor,
    seed: tf.Tensor,
    probability: float = AUGMENT_PROBABILITY,
    amplitude_range: tuple[float, float] = AMPLITUDE_RANGE,
    max_speed_scale: float = MAX_SPEED_SCALE,
    max_stretch_scale: float = MAX_STRETCH_SCALE,
    max_shift_frames: int = MAX_SHIFT_FRAMES,
) -> dict[str, tf.Tensor]:
    """Draws per-example augmentation parameters (stateless, so reproducible).

    Each of the four transforms is switched on independently with `probability`;
    a transform that is off gets its identity value.

    Args:
        batch_size: Number of examples.
        seed: int32/int64 tensor of shape `[2]`, the stateless RNG key.
        probability: Chance that each transform is applied to an example.
        amplitude_range: Gain range, uniform.
        max_speed_scale: Speed scale s ~ U(−max, max) for `change_speed`.
        max_stretch_scale: Stretch rate 1 + s, s ~ U(−max, max), for `stretch_frames`.
        max_shift_frames: Shift drawn uniformly from the integers in [−max, max].

    Returns:
        Dict of `[batch_size]` tensors: "amplitude" (gain), "speed" (scale),
        "stretch" (rate), "shift" (int32 frames).
    """
    u = tf.random.stateless_uniform([batch_size, 8], seed=seed)
    on = u[:, :4] < probability
    low, high = amplitude_range
    amplitude = low + (high - low) * u[:, 4]
    speed = max_speed_scale * (2.0 * u[:, 5] - 1.0)
    stretch = 1.0 + max_stretch_scale * (2.0 * u[:, 6] - 1.0)
    shift = tf.cast(tf.floor(u[:, 7] * (2 * max_shift_frames + 1)), tf.int32) - max_shift_frames
    shift = tf.minimum(shift, max_shift_frames)  # guards u == 1 - eps rounding up
    return {
        "amplitude": tf.where(on[:, 0], amplitude, 1.0),
        "speed": tf.where(on[:, 1], speed, 0.0),
        "stretch": tf.where(on[:, 2], stretch, 1.0),
        "shift": tf.where(on[:, 3], shift, 0),
    }


def augmented_log_mel(waveforms: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
    """Applies the augmentation chain, then the features (the paper's order).

    amplitude → speed/pitch → pad/crop to 16,000 → STFT → stretch → shift → mel/dB.
    With `identity_augmentation` parameters the result equals `log_mel(waveforms)`.

    Args:
        waveforms: float32 `[batch, samples]`, 16 kHz.
        params: From `sample_augmentation` (or built by hand).

    Returns:
        float32 `[batch, 32, 32, 1]`.
    """
    waveforms = fix_length(tf.convert_to_tensor(waveforms, tf.float32))
    waveforms = change_amplitude(waveforms, params["amplitude"])
    waveforms = change_speed(waveforms, params["speed"])
    magnitude = stretch_frames(stft_magnitude(waveforms), params["stretch"])
    magnitude = shift_frames(magnitude, params["shift"])
    return log_mel_from_magnitude(magnitude)
