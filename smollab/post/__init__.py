"""Post-training: chat data and templates, SFT, DPO, synthetic data, chat."""
