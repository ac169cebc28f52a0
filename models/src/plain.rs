//! The plaintext backends: `plain` (exact nonlinearities, f32 or f64) and `plain-approx`
//! (the kernel's approximation tables for SiLU, GeLU and the softmax exp).
//!
//! In `plain-approx` mode the reciprocal, rsqrt and max of softmax and GroupNorm stay
//! exact: the kernel's secure versions are within 1e-4 relative of them, two orders below
//! the activation approximations this mode studies.

use cipherdm_kernel::approx::{self, Function, Profile};

use crate::error::ModelError;
use crate::tensor::{Float, Tensor};
use crate::weights::Weights;
use cipherdm_kernel::exec::Backend;
use cipherdm_kernel::graph::{Activation, Conv2d, Node, Op};
use cipherdm_kernel::nn::{im2col_gather, im2col_index};

/// How nonlinearities are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Nonlinearity {
    /// The exact functions (`plain`).
    #[default]
    Exact,
    /// SiLU, GeLU and exp from an approximation profile (`plain-approx`).
    Approx(Profile),
}

impl core::str::FromStr for Nonlinearity {
    type Err = ModelError;

    /// `exact` or a profile name ([`Profile`]'s parser), case-insensitive.
    ///
    /// ```
    /// use cipherdm_models::plain::Nonlinearity;
    /// use cipherdm_kernel::approx::Profile;
    /// assert_eq!("exact".parse::<Nonlinearity>().unwrap(), Nonlinearity::Exact);
    /// assert_eq!("Loose".parse::<Nonlinearity>().unwrap(), Nonlinearity::Approx(Profile::Loose));
    /// assert!("fast".parse::<Nonlinearity>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, ModelError> {
        if s.trim().eq_ignore_ascii_case("exact") {
            return Ok(Nonlinearity::Exact);
        }
        s.parse().map(Nonlinearity::Approx).map_err(|_| {
            ModelError::Config(format!(
                "unknown profile `{s}` (exact, accurate, precise, loose, cipherdm)"
            ))
        })
    }
}

impl Nonlinearity {
    /// The name [`FromStr`](core::str::FromStr) reads back.
    pub fn name(self) -> &'static str {
        match self {
            Nonlinearity::Exact => "exact",
            Nonlinearity::Approx(p) => p.name(),
        }
    }

    fn table(self, f: Function) -> Result<Option<&'static approx::Entry>, ModelError> {
        match self {
            Nonlinearity::Exact => Ok(None),
            Nonlinearity::Approx(p) => Ok(Some(approx::entry(p, f)?)),
        }
    }
}

/// Exact SiLU.
pub fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// Exact GeLU (erf form).
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / core::f64::consts::SQRT_2))
}

/// erf to about 1e-15 (Abramowitz–Stegun 7.1.26 is too coarse for a reference; this is
/// the series below 3 and the continued fraction above).
fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 3.0 {
        // Maclaurin series: erf x = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)).
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / core::f64::consts::PI.sqrt()
    } else {
        // erfc x = e^{-x²}/(x√π) · 1/(1 + 1/(2x²)/(1 + 2/(2x²)/(1 + …))) (Lentz, fixed depth).
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (a + f);
        }
        1.0 - (-a * a).exp() / core::f64::consts::PI.sqrt() / (a + f)
    };
    r.copysign(x)
}

/// The plaintext backend over float type `F` with a set of weights.
///
/// ```
/// use cipherdm_kernel::{exec::run, graph::{Activation, GraphBuilder}};
/// use cipherdm_models::{plain::{PlainBackend, Nonlinearity}, Tensor, Weights};
/// let mut g = GraphBuilder::new();
/// let x = g.input("x", vec![3]);
/// let y = g.act("silu", x, Activation::Silu);
/// let graph = g.finish(y);
/// let mut b = PlainBackend::<f64>::new(Weights::default(), Nonlinearity::Exact);
/// let x = Tensor::new(vec![1, 3], vec![-1.0, 0.0, 2.0]).unwrap();
/// let y = run(&graph, &mut b, vec![("x", x)]).unwrap();
/// assert!((y.data()[2] - 2.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct PlainBackend<F> {
    weights: Weights<F>,
    nonlinearity: Nonlinearity,
    threads: usize,
}

impl<F: Float> PlainBackend<F> {
    /// A backend with these (canonical) weights.
    pub fn new(weights: Weights<F>, nonlinearity: Nonlinearity) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            weights,
            nonlinearity,
            threads,
        }
    }

    /// Limits the worker threads used across the batch (default: all cores).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The nonlinearity mode.
    pub fn nonlinearity(&self) -> Nonlinearity {
        self.nonlinearity
    }

    /// Switches the nonlinearity mode.
    pub fn set_nonlinearity(&mut self, n: Nonlinearity) {
        self.nonlinearity = n;
    }

    /// The weights.
    pub fn weights(&self) -> &Weights<F> {
        &self.weights
    }

    fn w(&self, name: &str) -> Result<&[F], ModelError> {
        Ok(self.weights.get(name)?.data())
    }

    /// Runs `item(b)` for every batch item on the worker threads; each returns `per`
    /// values, concatenated in batch order.
    fn per_item(
        &self,
        batch: usize,
        per: usize,
        item: impl Fn(usize) -> Result<Vec<F>, ModelError> + Sync,
    ) -> Result<Vec<F>, ModelError> {
        let threads = self.threads.min(batch).max(1);
        let mut out = vec![F::zero(); batch * per];
        if threads == 1 {
            for (b, chunk) in out.chunks_mut(per.max(1)).enumerate().take(batch) {
                chunk.copy_from_slice(&item(b)?);
            }
            return Ok(out);
        }
        let items_per = batch.div_ceil(threads);
        let item = &item;
        std::thread::scope(|s| {
            let handles: Vec<_> = out
                .chunks_mut(items_per * per)
                .enumerate()
                .map(|(t, chunk)| {
                    s.spawn(move || -> Result<(), ModelError> {
                        for (i, dst) in chunk.chunks_mut(per).enumerate() {
                            dst.copy_from_slice(&item(t * items_per + i)?);
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("worker thread panicked"))
        })?;
        Ok(out)
    }

    fn conv2d(
        &self,
        x: &Tensor<F>,
        c: &Conv2d,
        out_shape: &[usize],
    ) -> Result<Tensor<F>, ModelError> {
        let (b, cin, h, w) = nchw(x)?;
        let wt = self.weights.get(&c.weight)?;
        let &[cout, wcin, k, _] = wt.shape() else {
            return Err(ModelError::Shape(format!(
                "`{}` is not a conv kernel",
                c.weight
            )));
        };
        if wcin != cin {
            return Err(ModelError::Shape(format!(
                "`{}` expects {wcin} input channels, got {cin}",
                c.weight
            )));
        }
        let (ho, wo) = (out_shape[1], out_shape[2]);
        let bias = c.bias.as_deref().map(|n| self.w(n)).transpose()?;
        let kk = cin * k * k;
        let hw = ho * wo;
        let geometry = c.geometry();
        if (cin * h * w) as u64 >= u32::MAX as u64 {
            return Err(ModelError::Shape(format!(
                "`{}`: input item too large",
                c.weight
            )));
        }
        let idx = im2col_index([cin, h, w], k, &geometry, [ho, wo]);
        let data = self.per_item(b, cout * hw, |bi| {
            let xs = &x.data()[bi * cin * h * w..(bi + 1) * cin * h * w];
            let mut col = vec![F::zero(); kk * hw];
            im2col_gather(xs, &idx, F::zero(), &mut col);
            let mut out = vec![F::zero(); cout * hw];
            if let Some(bias) = bias {
                for (o, row) in out.chunks_mut(hw).enumerate() {
                    row.fill(bias[o]);
                }
            }
            matmul_acc(wt.data(), &col, &mut out, cout, kk, hw);
            Ok(out)
        })?;
        Tensor::new(vec![b, cout, ho, wo], data)
    }

    fn dense(
        &self,
        x: &Tensor<F>,
        weight: &str,
        bias: Option<&str>,
    ) -> Result<Tensor<F>, ModelError> {
        let &[b, n] = x.shape() else {
            return Err(ModelError::Shape(format!("dense input {:?}", x.shape())));
        };
        let wt = self.weights.get(weight)?;
        let &[out, wn] = wt.shape() else {
            return Err(ModelError::Shape(format!("`{weight}` is not a matrix")));
        };
        if wn != n {
            return Err(ModelError::Shape(format!(
                "`{weight}` expects {wn} inputs, got {n}"
            )));
        }
        let bias = bias.map(|n| self.w(n)).transpose()?;
        let mut data = Vec::with_capacity(b * out);
        for row in x.data().chunks(n) {
            for (o, wr) in wt.data().chunks(n).enumerate() {
                let s: F = row.iter().zip(wr).map(|(&a, &c)| a * c).sum();
                data.push(s + bias.map_or(F::zero(), |bb| bb[o]));
            }
        }
        Tensor::new(vec![b, out], data)
    }

    fn group_norm(
        &self,
        x: &Tensor<F>,
        groups: usize,
        eps: f64,
        scale: &str,
        bias: &str,
    ) -> Result<Tensor<F>, ModelError> {
        let b = x.shape()[0];
        let c = x.shape()[1];
        let spatial: usize = x.shape()[2..].iter().product();
        let (scale, bias) = (self.w(scale)?, self.w(bias)?);
        let per_group = c / groups * spatial;
        let mut out = x.clone();
        for (gi, chunk) in out
            .data_mut()
            .chunks_mut(per_group)
            .enumerate()
            .take(b * groups)
        {
            let n = F::of(per_group as f64);
            let mean = chunk.iter().copied().sum::<F>() / n;
            let var = chunk.iter().map(|&v| (v - mean) * (v - mean)).sum::<F>() / n;
            let inv = F::one() / (var + F::of(eps)).sqrt();
            let g = gi % groups;
            for (j, v) in chunk.iter_mut().enumerate() {
                let ch = g * (c / groups) + j / spatial;
                *v = (*v - mean) * inv * scale[ch] + bias[ch];
            }
        }
        Ok(out)
    }

    fn layer_norm(
        &self,
        x: &Tensor<F>,
        eps: f64,
        scale: &str,
        bias: &str,
    ) -> Result<Tensor<F>, ModelError> {
        let (b, c, h, w) = nchw(x)?;
        let hw = h * w;
        let (scale, bias) = (self.w(scale)?, self.w(bias)?);
        let mut out = x.clone();
        let data = out.data_mut();
        for bi in 0..b {
            for pos in 0..hw {
                let at = |ch: usize| (bi * c + ch) * hw + pos;
                let n = F::of(c as f64);
                let mean = (0..c).map(|ch| data[at(ch)]).sum::<F>() / n;
                let var = (0..c)
                    .map(|ch| (data[at(ch)] - mean) * (data[at(ch)] - mean))
                    .sum::<F>()
                    / n;
                let inv = F::one() / (var + F::of(eps)).sqrt();
                for ch in 0..c {
                    data[at(ch)] = (data[at(ch)] - mean) * inv * scale[ch] + bias[ch];
                }
            }
        }
        Ok(out)
    }

    fn activation(&self, x: &Tensor<F>, a: Activation) -> Result<Tensor<F>, ModelError> {
        let f: Box<dyn Fn(f64) -> f64> = match a {
            Activation::Relu => Box::new(|v: f64| v.max(0.0)),
            Activation::Silu => match self.nonlinearity.table(Function::Silu)? {
                None => Box::new(silu),
                Some(e) => Box::new(move |v| e.eval(v)),
            },
            Activation::Gelu => match self.nonlinearity.table(Function::Gelu)? {
                None => Box::new(gelu),
                Some(e) => Box::new(move |v| e.eval(v)),
            },
        };
        Ok(x.map(|v| F::of(f(v.as_f64()))))
    }

    fn attention(
        &self,
        q: &Tensor<F>,
        k: &Tensor<F>,
        v: &Tensor<F>,
        heads: usize,
    ) -> Result<Tensor<F>, ModelError> {
        let (b, c, h, w) = nchw(q)?;
        let (_, _, hk, wk) = nchw(k)?;
        let (n, nk) = (h * w, hk * wk);
        let d = c / heads;
        let scale = F::of(1.0 / (d as f64).sqrt());
        let exp = self.nonlinearity.table(Function::Exp)?;
        let data = self.per_item(b, c * n, |bi| {
            let qs = &q.data()[bi * c * n..(bi + 1) * c * n];
            let ks = &k.data()[bi * c * nk..(bi + 1) * c * nk];
            let vs = &v.data()[bi * c * nk..(bi + 1) * c * nk];
            let mut out = vec![F::zero(); c * n];
            for hd in 0..heads {
                let ch = hd * d..(hd + 1) * d;
                // qᵀ: (n, d); k_h: (d, nk); scores (n, nk).
                let qt = transpose(&qs[ch.start * n..ch.end * n], d, n);
                let mut s = vec![F::zero(); n * nk];
                matmul_acc(&qt, &ks[ch.start * nk..ch.end * nk], &mut s, n, d, nk);
                for row in s.chunks_mut(nk) {
                    softmax_row(row, scale, exp);
                }
                let vt = transpose(&vs[ch.start * nk..ch.end * nk], d, nk);
                let mut ot = vec![F::zero(); n * d];
                matmul_acc(&s, &vt, &mut ot, n, nk, d);
                out[ch.start * n..ch.end * n].copy_from_slice(&transpose(&ot, n, d));
            }
            Ok(out)
        })?;
        Tensor::new(q.shape().to_vec(), data)
    }
}

fn nchw<F: Float>(x: &Tensor<F>) -> Result<(usize, usize, usize, usize), ModelError> {
    match *x.shape() {
        [b, c, h, w] => Ok((b, c, h, w)),
        ref s => Err(ModelError::Shape(format!(
            "expected (B, C, H, W), got {s:?}"
        ))),
    }
}

/// `rows × cols` to `cols × rows`.
fn transpose<F: Float>(a: &[F], rows: usize, cols: usize) -> Vec<F> {
    let mut t = vec![F::zero(); a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// Softmax of `row·scale`, with the approximation's exp when given.
fn softmax_row<F: Float>(row: &mut [F], scale: F, exp: Option<&approx::Entry>) {
    let m = row.iter().fold(F::neg_infinity(), |m, &v| m.max(v * scale));
    let mut sum = F::zero();
    for v in row.iter_mut() {
        let z = *v * scale - m;
        *v = match exp {
            None => z.exp(),
            Some(e) => F::of(e.eval(z.as_f64())),
        };
        sum = sum + *v;
    }
    for v in row.iter_mut() {
        *v = *v / sum;
    }
}

/// `out (m×n) += a (m×k) · b (k×n)`, all row-major.
///
/// Register-tiled: each `4 × 16` block of `out` is accumulated over the whole `k` in
/// locals (which the compiler keeps in vector registers), so every element of `b` loaded
/// feeds four multiply-adds; tiles walk `out` column panel by column panel so a panel of
/// `b` stays in cache while all row blocks use it.
pub(crate) fn matmul_acc<F: Float>(a: &[F], b: &[F], out: &mut [F], m: usize, k: usize, n: usize) {
    const MR: usize = 4;
    const NR: usize = 16;
    for j0 in (0..n).step_by(NR) {
        let nr = NR.min(n - j0);
        for i0 in (0..m).step_by(MR) {
            let mr = MR.min(m - i0);
            let mut acc = [[F::zero(); NR]; MR];
            if mr == MR && nr == NR {
                for kk in 0..k {
                    let bv: &[F; NR] = b[kk * n + j0..kk * n + j0 + NR]
                        .try_into()
                        .expect("NR columns");
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = a[(i0 + r) * k + kk];
                        for (o, &bb) in row.iter_mut().zip(bv) {
                            *o = *o + av * bb;
                        }
                    }
                }
            } else {
                for kk in 0..k {
                    let bv = &b[kk * n + j0..kk * n + j0 + nr];
                    for (r, row) in acc.iter_mut().enumerate().take(mr) {
                        let av = a[(i0 + r) * k + kk];
                        for (o, &bb) in row.iter_mut().zip(bv) {
                            *o = *o + av * bb;
                        }
                    }
                }
            }
            for (r, row) in acc.iter().enumerate().take(mr) {
                let dst = &mut out[(i0 + r) * n + j0..(i0 + r) * n + j0 + nr];
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = *d + v;
                }
            }
        }
    }
}

impl<F: Float> Backend for PlainBackend<F> {
    type Value = Tensor<F>;
    type Error = ModelError;

    fn eval(&mut self, node: &Node, inputs: &[&Tensor<F>]) -> Result<Tensor<F>, ModelError> {
        let batch = inputs
            .first()
            .map_or(0, |t| t.shape().first().copied().unwrap_or(0));
        let mut shape = vec![batch];
        shape.extend_from_slice(&node.shape);
        let x = inputs
            .first()
            .ok_or_else(|| ModelError::Shape(format!("{}: no input", node.name)))?;
        match &node.op {
            Op::Input(_) => Err(ModelError::Config("inputs are supplied by run".into())),
            Op::Conv2d(c) => self.conv2d(x, c, &node.shape),
            Op::Dense { weight, bias } => self.dense(x, weight, bias.as_deref()),
            Op::GroupNorm {
                groups,
                eps,
                scale,
                bias,
            } => self.group_norm(x, *groups, *eps, scale, bias),
            Op::Act(a) => self.activation(x, *a),
            Op::LayerNorm { eps, scale, bias } => self.layer_norm(x, *eps, scale, bias),
            Op::Mul => {
                let y = inputs[1];
                if y.shape() != x.shape() {
                    return Err(ModelError::Shape(format!(
                        "{}: {:?} times {:?}",
                        node.name,
                        x.shape(),
                        y.shape()
                    )));
                }
                let data = x
                    .data()
                    .iter()
                    .zip(y.data())
                    .map(|(&a, &b)| a * b)
                    .collect();
                Tensor::new(x.shape().to_vec(), data)
            }
            Op::Scale(c) => Ok(x.map(|v| v * F::of(*c))),
            Op::Add => {
                let y = inputs[1];
                let mut out = (*x).clone();
                if y.shape() == x.shape() {
                    for (o, &v) in out.data_mut().iter_mut().zip(y.data()) {
                        *o = *o + v;
                    }
                } else {
                    let spatial: usize = x.shape()[2..].iter().product();
                    for (i, o) in out.data_mut().iter_mut().enumerate() {
                        *o = *o + y.data()[i / spatial];
                    }
                }
                Ok(out)
            }
            Op::Concat => {
                let mut data = Vec::with_capacity(shape.iter().product());
                for b in 0..batch {
                    for t in inputs {
                        let per = t.len() / batch;
                        data.extend_from_slice(&t.data()[b * per..(b + 1) * per]);
                    }
                }
                Tensor::new(shape, data)
            }
            Op::Split { start, len } => {
                let (c, spatial) = (x.shape()[1], x.shape()[2..].iter().product::<usize>());
                let mut data = Vec::with_capacity(batch * len * spatial);
                for b in 0..batch {
                    let base = (b * c + start) * spatial;
                    data.extend_from_slice(&x.data()[base..base + len * spatial]);
                }
                Tensor::new(shape, data)
            }
            Op::Attention { heads } => self.attention(x, inputs[1], inputs[2], *heads),
            Op::Upsample2 => {
                let (b, c, h, w) = nchw(x)?;
                let mut data = Vec::with_capacity(b * c * 4 * h * w);
                for plane in x.data().chunks(h * w) {
                    for y in 0..2 * h {
                        for xx in 0..2 * w {
                            data.push(plane[(y / 2) * w + xx / 2]);
                        }
                    }
                }
                Tensor::new(shape, data)
            }
            Op::Flatten => (*x).clone().reshape(shape),
            Op::GlobalMeanPool => {
                let (_, _, h, w) = nchw(x)?;
                let n = F::of((h * w) as f64);
                let data = x
                    .data()
                    .chunks(h * w)
                    .map(|p| p.iter().copied().sum::<F>() / n)
                    .collect();
                Tensor::new(shape, data)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiled_matmul_equals_the_definition_on_ragged_shapes() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 7), (4, 9, 16), (9, 13, 37), (16, 36, 784)] {
            let a: Vec<f64> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
                .collect();
            let b: Vec<f64> = (0..k * n)
                .map(|i| ((i * 53 % 97) as f64 - 48.0) / 5.0)
                .collect();
            let mut out = vec![1.0; m * n];
            matmul_acc(&a, &b, &mut out, m, k, n);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = 1.0 + (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum::<f64>();
                    assert!(
                        (out[i * n + j] - want).abs() < 1e-9,
                        "({m},{k},{n}) at ({i},{j})"
                    );
                }
            }
        }
    }

    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2), erf(3.5) to 1e-12 (tabulated).
        for (x, v) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
        ] {
            assert!((erf(x) - v).abs() < 1e-12, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + v).abs() < 1e-12);
        }
    }
}
