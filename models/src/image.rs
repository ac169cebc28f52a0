//! PNG output: grids of grey-scale samples.

use std::path::Path;

use crate::error::ModelError;
use crate::tensor::Tensor;

/// Pixels of a `(B, 1, H, W)` batch in `[-1, 1]` tiled `cols` per row with a 2-pixel
/// border, as 8-bit grey. Returns `(width, height, pixels)`.
pub fn grid(x: &Tensor<f64>, cols: usize) -> Result<(u32, u32, Vec<u8>), ModelError> {
    let &[b, 1, h, w] = x.shape() else {
        return Err(ModelError::Shape(format!(
            "a grid needs (B, 1, H, W), got {:?}",
            x.shape()
        )));
    };
    let cols = cols.clamp(1, b.max(1));
    let rows = b.div_ceil(cols);
    let (gw, gh) = (cols * (w + 2) + 2, rows * (h + 2) + 2);
    let mut px = vec![0u8; gw * gh];
    for i in 0..b {
        let (ox, oy) = (2 + (i % cols) * (w + 2), 2 + (i / cols) * (h + 2));
        for y in 0..h {
            for xx in 0..w {
                let v = x.data()[(i * h + y) * w + xx];
                px[(oy + y) * gw + ox + xx] = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
            }
        }
    }
    Ok((gw as u32, gh as u32, px))
}

/// Writes a grey-scale PNG.
pub fn write_png(
    path: impl AsRef<Path>,
    width: u32,
    height: u32,
    pixels: &[u8],
) -> Result<(), ModelError> {
    let path = path.as_ref();
    let file = std::fs::File::create(path).map_err(|e| ModelError::io(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let fmt = |e: png::EncodingError| ModelError::format(path.display().to_string(), e.to_string());
    let mut w = enc.write_header().map_err(fmt)?;
    w.write_image_data(pixels).map_err(fmt)?;
    w.finish().map_err(fmt)
}

/// Writes a batch as a PNG grid (see [`grid`]).
pub fn write_grid(path: impl AsRef<Path>, x: &Tensor<f64>, cols: usize) -> Result<(), ModelError> {
    let (w, h, px) = grid(x, cols)?;
    write_png(path, w, h, &px)
}
