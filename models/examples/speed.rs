use cipherdm_models::model::{Model, PlainDenoiser};
use cipherdm_models::plain::Nonlinearity;
use cipherdm_models::schedule::{initial_noise, Condition};
use cipherdm_models::{unet2d, Weights};
fn main() {
    for m in [Model::tiny().unwrap(), Model::unet2d(unet2d::Config::mnist()).unwrap()] {
        println!("params {}", m.graph.parameter_count());
        let mut w = Weights::<f32>::default();
        for s in &m.graph.weights { w.insert(s.name.clone(), cipherdm_models::Tensor::new(s.shape.clone(), vec![0.01; s.shape.iter().product()]).unwrap()); }
        let mut net = PlainDenoiser::new(m.clone(), w, Nonlinearity::Exact).unwrap();
        let x = initial_noise(0, vec![64, 1, 28, 28]).cast::<f32>();
        let c = vec![Condition::Class(1); 64];
        let t0 = std::time::Instant::now();
        net.forward(&x, 500, &c).unwrap();
        println!("forward b=64: {:?}", t0.elapsed());
    }
}
