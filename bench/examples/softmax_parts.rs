use cipherdm_kernel::approx::Profile;
use cipherdm_kernel::protocols::{self as pr};
use cipherdm_kernel::{ArithShare, Shape};
use cipherdm_transport_mem::{MemConfig, run3};
fn main() {
    let n = 196;
    let cfg = MemConfig::default();
    let out = run3(&cfg, |p| {
        let x = ArithShare::<u64>::zeros(Shape::new(&[n, n]).unwrap());
        let mut rep = Vec::new();
        let mut t = std::time::Instant::now();
        let c0 = *p.costs().total();
        let m = pr::max(p, &x, pr::poly::approx_compare_bits::<u64>(18))?;
        let c1 = *p.costs().total();
        rep.push(("max", c1.since(&c0), t.elapsed().as_secs_f64() * 1e3));
        t = std::time::Instant::now();
        let _ = m;
        let e = pr::exp(p, &x, Profile::CipherDm)?;
        let c2 = *p.costs().total();
        rep.push((
            "exp cipherdm",
            c2.since(&c1),
            t.elapsed().as_secs_f64() * 1e3,
        ));
        t = std::time::Instant::now();
        let _ = pr::exp(p, &x, Profile::Accurate)?;
        let c3 = *p.costs().total();
        rep.push((
            "exp accurate",
            c3.since(&c2),
            t.elapsed().as_secs_f64() * 1e3,
        ));
        t = std::time::Instant::now();
        let _ = pr::exp(p, &x, Profile::Loose)?;
        let c4 = *p.costs().total();
        rep.push(("exp loose", c4.since(&c3), t.elapsed().as_secs_f64() * 1e3));
        t = std::time::Instant::now();
        let _ = pr::softmax(p, &e, Profile::CipherDm)?;
        let c5 = *p.costs().total();
        rep.push((
            "softmax cipherdm",
            c5.since(&c4),
            t.elapsed().as_secs_f64() * 1e3,
        ));
        t = std::time::Instant::now();
        let s = ArithShare::<u64>::zeros(Shape::vector(n));
        let one = s.add_public_scalar(p.id(), 1u64 << 18);
        let _ = pr::reciprocal(p, &one, 0, 9)?;
        let c6 = *p.costs().total();
        rep.push(("reciprocal", c6.since(&c5), t.elapsed().as_secs_f64() * 1e3));
        t = std::time::Instant::now();
        let g = ArithShare::<u64>::zeros(Shape::new(&[1, 8, 14, 14]).unwrap());
        let gam = ArithShare::<u64>::zeros(Shape::vector(8));
        let _ = pr::group_norm(p, &g, 2, &gam, &gam, 1e-6, 1.0)?;
        let c7 = *p.costs().total();
        rep.push(("group_norm", c7.since(&c6), t.elapsed().as_secs_f64() * 1e3));
        t = std::time::Instant::now();
        let _ = pr::silu(p, &g, Profile::CipherDm)?;
        let c8 = *p.costs().total();
        rep.push((
            "silu cipherdm 1568",
            c8.since(&c7),
            t.elapsed().as_secs_f64() * 1e3,
        ));
        t = std::time::Instant::now();
        let _ = pr::silu(p, &g, Profile::Accurate)?;
        let c9 = *p.costs().total();
        rep.push((
            "silu accurate 1568",
            c9.since(&c8),
            t.elapsed().as_secs_f64() * 1e3,
        ));
        t = std::time::Instant::now();
        Ok(rep)
    });
    for (name, c, ms) in out[0].as_ref().unwrap() {
        println!(
            "{name:<20} {ms:>7.1} ms {:>10} B/party  {:>4} rounds  {:.1} B/elem/party",
            c.bytes_total(),
            c.rounds,
            c.bytes_total() as f64 / (n * n) as f64
        );
    }
}
