"""Phase 3: AdamW and Muon from scratch, MuonAdamW, and the depth dial's auto-scaling."""
