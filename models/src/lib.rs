//! U-Net definitions, weights, schedulers, samplers and the `cipherdm` tool: placeholder, filled in by issue 4 (models) and issue 5 (secure sampling).
