//! A Stable-Diffusion-1.5-sized conditional U-Net, for the cost model only: the structure
//! of diffusers' `UNet2DConditionModel` with SD 1.5's config (64×64×4 latents, channels
//! 320/640/1280/1280, two ResNets per level, `Transformer2DModel`s with self-attention,
//! cross-attention over 77 text tokens of width 768, LayerNorm and a GEGLU feed-forward,
//! 8 heads, GroupNorm 32). No weights are shipped or needed: the graph's weight specs give
//! the shapes, and [`crate::secure::cost`] turns the graph into bytes and rounds.
//!
//! Every op here is a real graph op with plaintext and secure implementations (tested on
//! small shapes in `models/tests/transformer_ops.rs`).

use crate::error::ModelError;
use crate::unet2d::resnet_block;
use cipherdm_kernel::graph::{Activation, Graph, GraphBuilder, ValueId};

/// Latent channels.
pub const LATENT_CHANNELS: usize = 4;
/// Latent side.
pub const LATENT_SIZE: usize = 64;
/// Text tokens.
pub const TOKENS: usize = 77;
/// Text embedding width.
pub const CONTEXT_DIM: usize = 768;
const CHANNELS: [usize; 4] = [320, 640, 1280, 1280];
const HEADS: usize = 8;
const GROUPS: usize = 32;

/// diffusers' `Transformer2DModel` with one `BasicTransformerBlock`.
fn transformer(
    g: &mut GraphBuilder,
    p: &str,
    x: ValueId,
    context: ValueId,
) -> Result<ValueId, ModelError> {
    let c = g.shape(x)[0];
    let h = g.group_norm(&format!("{p}.norm"), x, GROUPS, 1e-6)?;
    let h = g.linear_1x1(&format!("{p}.proj_in"), h, c, true)?;
    let b = format!("{p}.transformer_blocks.0");
    // Self-attention.
    let n = g.layer_norm(&format!("{b}.norm1"), h, 1e-5)?;
    let q = g.linear_1x1(&format!("{b}.attn1.to_q"), n, c, false)?;
    let k = g.linear_1x1(&format!("{b}.attn1.to_k"), n, c, false)?;
    let v = g.linear_1x1(&format!("{b}.attn1.to_v"), n, c, false)?;
    let a = g.attention(&format!("{b}.attn1"), q, k, v, HEADS)?;
    let a = g.linear_1x1(&format!("{b}.attn1.to_out.0"), a, c, true)?;
    let h = g.add(&format!("{b}.residual1"), h, a)?;
    // Cross-attention over the text tokens.
    let n = g.layer_norm(&format!("{b}.norm2"), h, 1e-5)?;
    let q = g.linear_1x1(&format!("{b}.attn2.to_q"), n, c, false)?;
    let k = g.linear_1x1(&format!("{b}.attn2.to_k"), context, c, false)?;
    let v = g.linear_1x1(&format!("{b}.attn2.to_v"), context, c, false)?;
    let a = g.attention(&format!("{b}.attn2"), q, k, v, HEADS)?;
    let a = g.linear_1x1(&format!("{b}.attn2.to_out.0"), a, c, true)?;
    let h = g.add(&format!("{b}.residual2"), h, a)?;
    // GEGLU feed-forward: value · GeLU(gate), inner width 4c.
    let n = g.layer_norm(&format!("{b}.norm3"), h, 1e-5)?;
    let proj = g.linear_1x1(&format!("{b}.ff.net.0.proj"), n, 8 * c, true)?;
    let value = g.split(&format!("{b}.ff.value"), proj, 0, 4 * c)?;
    let gate = g.split(&format!("{b}.ff.gate"), proj, 4 * c, 4 * c)?;
    let gate = g.act(&format!("{b}.ff.gelu"), gate, Activation::Gelu);
    let f = g.mul(&format!("{b}.ff.geglu"), value, gate)?;
    let f = g.linear_1x1(&format!("{b}.ff.net.2"), f, c, true)?;
    let h = g.add(&format!("{b}.residual3"), h, f)?;
    let h = g.linear_1x1(&format!("{p}.proj_out"), h, c, true)?;
    Ok(g.add(&format!("{p}.residual"), x, h)?)
}

/// SD 1.5's time features of timestep `t` (`Timesteps(320, flip_sin_to_cos=True,
/// freq_shift=0)`).
pub fn time_features(t: f64) -> Vec<f64> {
    crate::unet2d::sinusoidal(CHANNELS[0], t, true, 0)
}

/// The SD-1.5-sized U-Net graph: inputs `x` (4, 64, 64), `time` (320 sinusoidal
/// features) and `context` (768, 77, 1).
pub fn graph() -> Result<Graph, ModelError> {
    let mut g = GraphBuilder::new();
    let ch = CHANNELS;
    let temb_dim = 4 * ch[0];
    let x = g.input("x", vec![LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE]);
    let time = g.input("time", vec![ch[0]]);
    let context = g.input("context", vec![CONTEXT_DIM, TOKENS, 1]);
    let t = g.dense("time_embedding.linear_1", time, temb_dim)?;
    let t = g.act("time_embedding.act", t, Activation::Silu);
    let t = g.dense("time_embedding.linear_2", t, temb_dim)?;
    let temb = g.act("emb_silu", t, Activation::Silu);
    let res = |g: &mut GraphBuilder, p: &str, h: ValueId, c: usize| {
        resnet_block(g, p, h, c, temb, GROUPS, 1e-5)
    };

    let mut h = g.conv("conv_in", x, ch[0], 3)?;
    let mut skips = vec![h];
    for (i, &c) in ch.iter().enumerate() {
        for j in 0..2 {
            h = res(&mut g, &format!("down_blocks.{i}.resnets.{j}"), h, c)?;
            if i < 3 {
                h = transformer(
                    &mut g,
                    &format!("down_blocks.{i}.attentions.{j}"),
                    h,
                    context,
                )?;
            }
            skips.push(h);
        }
        if i < 3 {
            let p = format!("down_blocks.{i}.downsamplers.0.conv");
            h = g.conv_general(&p, h, c, 3, 2, [(1, 1); 2], 1, true)?;
            skips.push(h);
        }
    }
    h = res(&mut g, "mid_block.resnets.0", h, ch[3])?;
    h = transformer(&mut g, "mid_block.attentions.0", h, context)?;
    h = res(&mut g, "mid_block.resnets.1", h, ch[3])?;
    for i in 0..4 {
        let c = ch[3 - i];
        for j in 0..3 {
            let skip = skips
                .pop()
                .ok_or_else(|| ModelError::Config("skip stack underflow".into()))?;
            h = g.concat(&format!("up_blocks.{i}.concat.{j}"), &[h, skip])?;
            h = res(&mut g, &format!("up_blocks.{i}.resnets.{j}"), h, c)?;
            if i > 0 {
                h = transformer(&mut g, &format!("up_blocks.{i}.attentions.{j}"), h, context)?;
            }
        }
        if i < 3 {
            h = g.upsample2(&format!("up_blocks.{i}.upsample"), h)?;
            h = g.conv(&format!("up_blocks.{i}.upsamplers.0.conv"), h, c, 3)?;
        }
    }
    let h = g.group_norm("conv_norm_out", h, GROUPS, 1e-5)?;
    let h = g.act("conv_act", h, Activation::Silu);
    let out = g.conv("conv_out", h, LATENT_CHANNELS, 3)?;
    Ok(g.finish(out))
}
