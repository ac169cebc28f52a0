//! Framed, encrypted TCP links between the three cipherdm parties: placeholder, filled in by issue 7 (TCP transport and the party daemon).
