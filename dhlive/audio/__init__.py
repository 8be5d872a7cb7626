"""Audio stage: fbank features -> LSTM -> mouth coefficients (see the audio model issue)."""
