use cipherdm_models::commands::load_model;
use cipherdm_models::mnist::{Mnist, Split};
use cipherdm_models::model::PlainDenoiser;
use cipherdm_models::plain::Nonlinearity;
use cipherdm_models::schedule::{Condition, Schedule, normal};
use cipherdm_models::tensor::Tensor;
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args[1] == "acc" {
        accuracy(&args[2], &args[3], args[4].parse().unwrap());
        return;
    }
    let (m, w) = load_model(&args[1], args.get(2).map(std::path::Path::new)).unwrap();
    let data = Mnist::load(Split::Test).unwrap();
    let classes: Vec<u8> = (0..m.classes() as u8).collect();
    let data = data.filter(&classes);
    let mut net = PlainDenoiser::new(m.clone(), w, Nonlinearity::Exact).unwrap();
    if args.len() > 3 && args[3] == "trace" {
        trace(&mut net, m.classes());
        return;
    }
    if args.len() > 3 {
        probe(&mut net, &data);
        return;
    }
    let s = Schedule::cipherdm();
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let idx: Vec<usize> = (0..32).collect();
    let x0 = data.batch(&idx);
    for t in [1usize, 21, 101, 301, 501, 701, 901, 981] {
        let eps = normal(&mut rng, x0.len());
        let xt: Vec<f64> = x0
            .data()
            .iter()
            .zip(&eps)
            .map(|(&x, &e)| s.add_noise(x as f64, e, t))
            .collect();
        let xt = Tensor::new(x0.shape().to_vec(), xt).unwrap();
        let conds: Vec<Condition> = idx
            .iter()
            .map(|&i| Condition::Class(data.labels[i] as usize))
            .collect();
        let p = net.forward(&xt, t, &conds).unwrap();
        let mse: f64 = p
            .data()
            .iter()
            .zip(&eps)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / eps.len() as f64;
        let a = s.alphas_cumprod[t];
        let x0h: Vec<f64> = xt
            .data()
            .iter()
            .zip(p.data())
            .map(|(&x, &e)| (x - (1.0 - a).sqrt() * e) / a.sqrt())
            .collect();
        let m = x0h.iter().sum::<f64>() / x0h.len() as f64;
        let m0 = x0.data().iter().map(|&v| v as f64).sum::<f64>() / x0h.len() as f64;
        let sq = x0h.iter().map(|v| v * v).sum::<f64>() / x0h.len() as f64;
        let em = p.data().iter().sum::<f64>() / x0h.len() as f64;
        println!(
            "t={t:4} mse={mse:.4} x0hat mean {m:.3} sq {sq:.3} true mean {m0:.3} eps mean {em:.3}"
        );
    }
}

#[allow(dead_code)]
pub fn trace(net: &mut PlainDenoiser<f64>, classes: usize) {
    use cipherdm_models::schedule::{DdimConfig, initial_noise};
    let s = Schedule::cipherdm();
    let n = 8;
    let mut x = initial_noise(0, vec![n, 1, 28, 28]);
    let conds: Vec<Condition> = (0..n).map(|i| Condition::Class(i % classes)).collect();
    let tmax: usize = std::env::var("TMAX")
        .map(|v| v.parse().unwrap())
        .unwrap_or(1000);
    for (t, prev) in DdimConfig::cipherdm()
        .timesteps(1000)
        .unwrap()
        .into_iter()
        .filter(|(t, _)| *t < tmax)
    {
        let a_t = s.alphas_cumprod[t];
        let a_p = prev
            .map(|p| s.alphas_cumprod[p])
            .unwrap_or(s.alphas_cumprod[0]);
        let e = net.forward(&x, t, &conds).unwrap();
        let mut clipped = 0;
        let mut x0s = 0.0;
        let d: Vec<f64> = x
            .data()
            .iter()
            .zip(e.data())
            .map(|(&xv, &ev)| {
                let x0 = (xv - (1.0 - a_t).sqrt() * ev) / a_t.sqrt();
                if x0.abs() > 1.0 {
                    clipped += 1;
                }
                x0s += x0 * x0;
                let x0 = if std::env::var("NOCLIP").is_ok() {
                    x0
                } else {
                    x0.clamp(-1.0, 1.0)
                };
                a_p.sqrt() * x0 + (1.0 - a_p).sqrt() * ev
            })
            .collect();
        let es = e.data().iter().map(|v| v * v).sum::<f64>() / e.len() as f64;
        let xs = x.data().iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let mx = x.data().iter().sum::<f64>() / x.len() as f64;
        println!(
            "t={t:4} mean={mx:.3} |x|²={xs:.3} |eps|²={es:.3} |x0|²={:.3} clipped={:.2}",
            x0s / x.len() as f64,
            clipped as f64 / x.len() as f64
        );
        x = Tensor::new(x.shape().to_vec(), d).unwrap();
    }
    cipherdm_models::image::write_grid("/tmp/s/trace.png", &x, 8).unwrap();
}

#[allow(dead_code)]
pub fn probe(net: &mut PlainDenoiser<f64>, data: &Mnist) {
    let s = Schedule::cipherdm();
    let mut rng = ChaCha12Rng::seed_from_u64(3);
    let idx: Vec<usize> = (0..16).collect();
    let x0 = data.batch(&idx);
    let conds: Vec<Condition> = idx
        .iter()
        .map(|&i| Condition::Class(data.labels[i] as usize))
        .collect();
    for t in [981usize, 901, 841, 701, 501] {
        let a = s.alphas_cumprod[t];
        for real in [true, false] {
            let eps = normal(&mut rng, x0.len());
            let xt: Vec<f64> = x0
                .data()
                .iter()
                .zip(&eps)
                .map(|(&x, &e)| if real { s.add_noise(x as f64, e, t) } else { e })
                .collect();
            let xt = Tensor::new(x0.shape().to_vec(), xt).unwrap();
            let p = net.forward(&xt, t, &conds).unwrap();
            let x0h: Vec<f64> = xt
                .data()
                .iter()
                .zip(p.data())
                .map(|(&x, &e)| (x - (1.0 - a).sqrt() * e) / a.sqrt())
                .collect();
            let m = x0h.iter().sum::<f64>() / x0h.len() as f64;
            let clipped: f64 =
                x0h.iter().map(|v| v.clamp(-1.0, 1.0)).sum::<f64>() / x0h.len() as f64;
            println!("t={t} real={real} x0hat mean {m:.3} clipped mean {clipped:.3}");
        }
    }
}

#[allow(dead_code)]
pub fn accuracy(model: &str, weights: &str, n: usize) {
    use cipherdm_models::commands::{Classifier, sample_plain};
    let (m, w) = load_model(model, Some(std::path::Path::new(weights))).unwrap();
    let labels: Vec<usize> = (0..n).map(|i| i % m.classes()).collect();
    let x = sample_plain(&m, &w, Nonlinearity::Exact, &labels, 0.0, 50, 7).unwrap();
    let mut c = Classifier::shipped().unwrap();
    let classes: Vec<usize> = (0..m.classes()).collect();
    let pred = c.predict_among(&x.cast(), classes.len()).unwrap();
    let acc = pred.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64 / n as f64;
    println!("{weights}: accuracy {acc:.3} over {n}");
    cipherdm_models::image::write_grid("/tmp/s/acc.png", &x, 10).unwrap();
}
