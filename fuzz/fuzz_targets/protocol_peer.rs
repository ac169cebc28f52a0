//! An honest party against peers whose every byte comes from the fuzzer: session set-up,
//! then `mul_fixed`, truncation, comparison, a piecewise SiLU, a softmax and one U-Net
//! layer (3×3 convolution, GroupNorm, SiLU). The honest party must return a value or an
//! error — never panic, hang or allocate beyond what its own shapes need.
#![no_main]

use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::nn::{self, ConvGeometry};
use cipherdm_kernel::protocols as pr;
use cipherdm_kernel::{ArithShare, FixedPoint, Party, PartyId, Shape, Transport, TransportError};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

/// Peers that say whatever the fuzzer says; what the honest party sends is dropped.
struct HostilePeers<'a> {
    me: PartyId,
    input: &'a [u8],
}

impl Transport for HostilePeers<'_> {
    fn send(&mut self, to: PartyId, _msg: &[u8]) -> Result<(), TransportError> {
        if to == self.me {
            return Err(TransportError::BadPeer {
                peer: to.index() as u8,
            });
        }
        Ok(())
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), TransportError> {
        if from == self.me {
            return Err(TransportError::BadPeer {
                peer: from.index() as u8,
            });
        }
        // The transport's own contract: exactly the expected length, else an error.
        match self.input.split_at_checked(buf.len()) {
            Some((now, rest)) => {
                buf.copy_from_slice(now);
                self.input = rest;
                Ok(())
            }
            None => Err(TransportError::Closed { peer: from }),
        }
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}

/// The honest party's own (fixed, arbitrary) shares of an input.
fn share(dims: &[usize], seed: u64) -> ArithShare<u64> {
    let shape = Shape::new(dims).expect("valid shape");
    let n = shape.numel() as u64;
    let this: Vec<u64> = (0..n)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) << 10)
        .collect();
    let next: Vec<u64> = (0..n)
        .map(|i| (i.wrapping_mul(40_503) ^ seed) << 9)
        .collect();
    ArithShare::from_components(this, next, shape).expect("consistent lengths")
}

fn run(p: &mut Party<HostilePeers<'_>>, op: u8) -> Result<(), cipherdm_kernel::Error> {
    let profile = [
        Profile::Accurate,
        Profile::CipherDm,
        Profile::Loose,
        Profile::Precise,
    ][(op >> 4) as usize % 4];
    let x = share(&[2, 8], 1);
    let y = share(&[2, 8], 2);
    match op % 6 {
        0 => drop(pr::mul_fixed(p, &x, &y)?),
        1 => drop(pr::trunc(p, &x, 18)?),
        2 => drop(pr::lt(p, &x, &y)?),
        3 => drop(pr::silu(p, &x, profile)?),
        4 => drop(pr::softmax(p, &x, profile)?),
        _ => {
            let img = share(&[1, 4, 4, 4], 3);
            let w = share(&[4, 4, 3, 3], 4);
            let b = share(&[4], 5);
            let g = ConvGeometry {
                stride: 1,
                padding: [(1, 1), (1, 1)],
                lhs_dilation: 1,
            };
            let h = nn::conv2d(p, &img, &w, Some(&b), &g)?;
            let gamma = share(&[4], 6);
            let beta = share(&[4], 7);
            let n = pr::group_norm(p, &h, 2, &gamma, &beta, 1e-6, 1.0)?;
            drop(pr::silu(p, &n, profile)?);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, input)) = data.split_first() else {
        return;
    };
    let me = PartyId::ALL[op as usize % 3];
    let t = HostilePeers { me, input };
    let mut rng = ChaCha12Rng::seed_from_u64(9);
    let Ok(mut p) = Party::setup(me, t, FixedPoint::default(), &mut rng) else {
        return;
    };
    let _ = run(&mut p, op / 3);
});
