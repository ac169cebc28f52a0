//! `cipherdm-tiny`: an exact port of CipherDM's binary-MNIST U-Net (15,881 parameters),
//! flax parameter names and layouts, quirks included (as in the authors' released
//! code): 2-group GroupNorm with ε = 1e-6 everywhere,
//! stride-2 SAME padding (0, 1), the transposed convolution as an input-dilated
//! convolution with padding (2, 1) and no kernel flip, single-head attention at 14×14, and
//! the sinusoidal time features `[sin t, sin t/100, cos t, cos t/100]` computed in
//! plaintext (t is public).
//!
//! Graph inputs: `x` `(1, 28, 28)`, `time` `(4)` from [`time_features`], and `label` `(2)`,
//! a one-hot row (or any mixture of rows, for an "average class" condition).
//!
//! `cipherdm-tiny-unaliased` is the same graph fed [`unaliased_time_features`]: CipherDM's
//! features wrap (t = 981 looks like t = 353 to the network), these do not. The time
//! features are public and computed in plaintext, so both cost the servers the same.

use crate::error::ModelError;
use cipherdm_kernel::graph::{Activation, Graph, GraphBuilder, Stored, ValueId};

/// Number of classes (digits 0 and 1).
pub const CLASSES: usize = 2;
const GROUPS: usize = 2;
const EPS: f64 = 1e-6;
const TEMB: usize = 8;

/// CipherDM's positional embedding of a timestep: `[sin t, sin t/100, cos t, cos t/100]`.
pub fn time_features(t: f64) -> Vec<f64> {
    // half = 2 frequencies exp(-i·ln(10000)/2), i = 0, 1: 1 and 1/100.
    let f = [1.0, (-(10000f64.ln()) / 2.0).exp()];
    vec![
        (t * f[0]).sin(),
        (t * f[1]).sin(),
        (t * f[0]).cos(),
        (t * f[1]).cos(),
    ]
}

/// Time features that identify every timestep of the 1000-step schedule:
/// `[sin ω₁t, sin ω₂t, cos ω₁t, cos ω₂t]` with periods 4000 and 1000 steps. The slow pair
/// turns a quarter circle over `0..1000`, so it alone is one-to-one; the fast pair gives
/// neighbouring steps distinct features (one full turn).
///
/// ```
/// use cipherdm_models::tiny::unaliased_time_features;
/// let d = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
/// // CipherDM's features put t = 981 near t = 353; these keep them apart.
/// assert!(d(&unaliased_time_features(981.0), &unaliased_time_features(353.0)) > 1.0);
/// ```
pub fn unaliased_time_features(t: f64) -> Vec<f64> {
    use core::f64::consts::PI;
    let f = [2.0 * PI / 4000.0, 2.0 * PI / 1000.0];
    vec![
        (t * f[0]).sin(),
        (t * f[1]).sin(),
        (t * f[0]).cos(),
        (t * f[1]).cos(),
    ]
}

/// Which public time features a `tiny` model is fed (the graph is the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFeatures {
    /// CipherDM's [`time_features`] (`cipherdm-tiny`, the exact port).
    CipherDm,
    /// [`unaliased_time_features`] (`cipherdm-tiny-unaliased`).
    Unaliased,
}

impl TimeFeatures {
    /// The features of timestep `t`.
    pub fn of(self, t: f64) -> Vec<f64> {
        match self {
            Self::CipherDm => time_features(t),
            Self::Unaliased => unaliased_time_features(t),
        }
    }
}

struct Ctx {
    temb: ValueId,
    label: ValueId,
}

fn res_block(
    g: &mut GraphBuilder,
    p: &str,
    x: ValueId,
    cout: usize,
    attention: bool,
    ctx: &Ctx,
) -> Result<ValueId, ModelError> {
    let cin = g.shape(x)[0];
    let h = g.group_norm(&format!("{p}.GroupNorm_0"), x, GROUPS, EPS)?;
    let h = g.act(&format!("{p}.silu_0"), h, Activation::Silu);
    let h = g.conv(&format!("{p}.Conv_0"), h, cout, 3)?;
    let t = g.dense(&format!("{p}.Dense_0"), ctx.temb, cout)?;
    let h = g.add(&format!("{p}.add_time"), h, t)?;
    let e = g.dense_named(
        &format!("{p}.Embed_0"),
        ctx.label,
        cout,
        "embedding",
        Stored::Transposed,
        false,
    )?;
    let h = g.add(&format!("{p}.add_label"), h, e)?;
    let h = g.group_norm(&format!("{p}.GroupNorm_1"), h, GROUPS, EPS)?;
    let h = g.act(&format!("{p}.silu_1"), h, Activation::Silu);
    let h = g.conv(&format!("{p}.Conv_1"), h, cout, 3)?;
    let skip = if cin != cout {
        g.conv(&format!("{p}.Conv_2"), x, cout, 1)?
    } else {
        x
    };
    let h = g.add(&format!("{p}.residual"), h, skip)?;
    if attention {
        attention_block(g, &format!("{p}.AttentionBlock_0"), h)
    } else {
        Ok(h)
    }
}

fn attention_block(g: &mut GraphBuilder, p: &str, x: ValueId) -> Result<ValueId, ModelError> {
    let c = g.shape(x)[0];
    let h = g.group_norm(&format!("{p}.norm"), x, GROUPS, EPS)?;
    let qkv = g.conv(&format!("{p}.to_qkv"), h, 3 * c, 1)?;
    let q = g.split(&format!("{p}.q"), qkv, 0, c)?;
    let k = g.split(&format!("{p}.k"), qkv, c, c)?;
    let v = g.split(&format!("{p}.v"), qkv, 2 * c, c)?;
    let a = g.attention(&format!("{p}.attention"), q, k, v, 1)?;
    let o = g.conv(&format!("{p}.to_out"), a, c, 1)?;
    Ok(g.add(&format!("{p}.residual"), o, x)?)
}

/// The `cipherdm-tiny` graph.
///
/// ```
/// let g = cipherdm_models::tiny::graph().unwrap();
/// assert_eq!(g.parameter_count(), 15_881);
/// ```
pub fn graph() -> Result<Graph, ModelError> {
    let mut g = GraphBuilder::new().flax_layout(true);
    let x = g.input("x", vec![1, 28, 28]);
    let time = g.input("time", vec![4]);
    let label = g.input("label", vec![CLASSES]);
    let t = g.dense("time_mlp.layers_1", time, TEMB)?;
    let t = g.act("time_mlp.silu", t, Activation::Silu);
    let t = g.dense("time_mlp.layers_3", t, TEMB)?;
    // Every ResBlock applies silu to the time embedding; it is the same value, computed once.
    let temb = g.act("temb_silu", t, Activation::Silu);
    let ctx = Ctx { temb, label };

    let mut skips = Vec::new();
    let mut h = g.conv("init_conv", x, 4, 3)?;
    skips.push(h);
    for (i, (c, attn)) in [(4, false), (4, false)].into_iter().enumerate() {
        h = res_block(&mut g, &format!("downs_{i}"), h, c, attn, &ctx)?;
        skips.push(h);
    }
    h = g.conv_general("downs_2.Conv_0", h, 4, 3, 2, [(0, 1); 2], 1, true)?;
    skips.push(h);
    for (i, c) in [(3, 8), (4, 8)] {
        h = res_block(&mut g, &format!("downs_{i}"), h, c, true, &ctx)?;
        skips.push(h);
    }
    h = res_block(&mut g, "mid_0", h, 8, true, &ctx)?;
    h = res_block(&mut g, "mid_1", h, 8, false, &ctx)?;
    for (i, c, attn) in [(0, 8, true), (1, 8, true), (2, 8, true)] {
        let skip = skips.pop().expect("skips pushed above");
        h = g.concat(&format!("ups_{i}.concat"), &[h, skip])?;
        h = res_block(&mut g, &format!("ups_{i}"), h, c, attn, &ctx)?;
    }
    h = g.conv_general("ups_3.ConvTranspose_0", h, 8, 3, 1, [(2, 1); 2], 2, true)?;
    for (i, c) in [(4, 4), (5, 4), (6, 4)] {
        let skip = skips.pop().expect("skips pushed above");
        h = g.concat(&format!("ups_{i}.concat"), &[h, skip])?;
        h = res_block(&mut g, &format!("ups_{i}"), h, c, false, &ctx)?;
    }
    let h = g.group_norm("out_norm", h, GROUPS, EPS)?;
    let h = g.act("out_silu", h, Activation::Silu);
    let out = g.conv("out_conv", h, 1, 3)?;
    Ok(g.finish(out))
}
