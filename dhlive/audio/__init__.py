"""Audio stage: fbank features -> LSTM -> mouth coefficients (mouth.py decodes them)."""
