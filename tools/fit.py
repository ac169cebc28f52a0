"""Minimax-style polynomial fits for the Accurate approximation profile.

Pure Python (no numpy): least squares in the Chebyshev basis on a dense grid,
refined towards minimax by Lawson's iterative reweighting. Prints monomial
coefficients in the mapped variable u = scale*x + shift and the max abs error.
Usage: python3 tools/fit.py
"""
import math
import sys

def solve(a, b):
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    return [m[i][n] / m[i][i] for i in range(n)]

def cheb_row(t, d):
    row = [1.0, t]
    for _ in range(2, d + 1):
        row.append(2 * t * row[-1] - row[-2])
    return row[: d + 1]

def fit(f, a, b, d, iters=60, pts=1500, parity=None):
    """Fit f on [a, b] with a degree-d polynomial in u = (2x - a - b)/(b - a)."""
    xs = [a + (b - a) * (0.5 - 0.5 * math.cos(math.pi * (i + 0.5) / pts)) for i in range(pts)]
    ts = [(2 * x - a - b) / (b - a) for x in xs]
    ys = [f(x) for x in xs]
    rows = [cheb_row(t, d) for t in ts]
    w = [1.0] * pts
    best = None
    for _ in range(iters):
        ata = [[sum(w[i] * rows[i][j] * rows[i][k] for i in range(pts)) for k in range(d + 1)] for j in range(d + 1)]
        atb = [sum(w[i] * rows[i][j] * ys[i] for i in range(pts)) for j in range(d + 1)]
        c = solve(ata, atb)
        err = [sum(cj * r for cj, r in zip(c, rows[i])) - ys[i] for i in range(pts)]
        m = max(abs(e) for e in err)
        if best is None or m < best[0]:
            best = (m, c)
        s = sum(w[i] * abs(err[i]) for i in range(pts))
        w = [w[i] * abs(err[i]) / s for i in range(pts)]
    return best

def cheb_to_mono(c):
    d = len(c) - 1
    t = [[1.0], [0.0, 1.0]]
    for n in range(2, d + 1):
        nxt = [0.0] * (n + 1)
        for i, v in enumerate(t[-1]):
            nxt[i + 1] += 2 * v
        for i, v in enumerate(t[-2]):
            nxt[i] -= v
        t.append(nxt)
    out = [0.0] * (d + 1)
    for n, cn in enumerate(c):
        for i, v in enumerate(t[n]):
            out[i] += cn * v
    return out

sig = lambda x: 1 / (1 + math.exp(-x)) if x > -700 else 0.0
silu = lambda x: x * sig(x)
gelu = lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2)))
mish = lambda x: x * math.tanh(math.log1p(math.exp(x))) if x < 30 else x

if __name__ == "__main__" and "--tables" not in sys.argv:

    for name, f, a, b, d in [
        ("exp", math.exp, -10, 0, 8), ("exp", math.exp, -10, 0, 9), ("exp", math.exp, -10, 0, 10),
        ("exp", math.exp, -10, -3, 6), ("exp", math.exp, -3, 0, 5),("exp", math.exp, -3, 0, 4),
        ("silu", silu, -10, 10, 12), ("silu", silu, -8, 8, 10), ("silu", silu, -6, 6, 8),
        ("silu", silu, -10, 0, 8), ("silu", silu, -10, 0, 6),
    ]:
        m, c = fit(f, a, b, d, iters=25, pts=600)
        print(name, a, b, d, "max err %.2e" % m)

def fit_powers(f, a, b, powers, scale=1.0, shift=0.0, iters=40, pts=800):
    """Lawson fit of f on [a, b] as sum_i c_i u^i over the given powers, u = scale*x + shift.
    Returns (max abs error, {power: coefficient})."""
    xs = [a + (b - a) * (0.5 - 0.5 * math.cos(math.pi * (i + 0.5) / pts)) for i in range(pts)]
    us = [scale * x + shift for x in xs]
    ys = [f(x) for x in xs]
    norms = [max(abs(u) ** p for u in us) or 1.0 for p in powers]
    rows = [[u ** p / nm for p, nm in zip(powers, norms)] for u in us]
    n = len(powers)
    w = [1.0] * pts
    best = None
    for _ in range(iters):
        ata = [[sum(w[i] * rows[i][j] * rows[i][k] for i in range(pts)) for k in range(n)] for j in range(n)]
        atb = [sum(w[i] * rows[i][j] * ys[i] for i in range(pts)) for j in range(n)]
        c = solve(ata, atb)
        err = [sum(cj * r for cj, r in zip(c, rows[i])) - ys[i] for i in range(pts)]
        m = max(abs(e) for e in err)
        if best is None or m < best[0]:
            best = (m, {p: cj / nm for p, cj, nm in zip(powers, c, norms)})
        s = sum(w[i] * abs(err[i]) for i in range(pts))
        w = [w[i] * abs(err[i]) / s for i in range(pts)]
    return best


def accurate_tables():
    """The Accurate profile: (name, f, scale, shift, breaks, piece specs).
    A piece spec is 'zero', 'x', 'one', ('fit', a, b, powers) or ('mirror', k, offset_kind)."""
    E = [0, 1, 2, 4, 6]
    F = [0, 1, 2, 3, 4, 5, 6]
    return [
        ("SILU", silu, 1 / 4, 0.0, [-9.5, -2.5, 2.5, 9.5],
         ["zero", ("fit", -9.5, -2.5, E), ("fit", -2.5, 2.5, E), ("mirror", 1, "x"), "x"]),
        ("GELU", gelu, 1 / 2, 0.0, [-4.0, -1.5, 1.5, 4.0],
         ["zero", ("fit", -4.0, -1.5, E), ("fit", -1.5, 1.5, E), ("mirror", 1, "x"), "x"]),
        ("MISH", mish, 1 / 4, 0.0, [-9.5, -2.5, 0.75, 5.0],
         ["zero", ("fit", -9.5, -2.5, F), ("fit", -2.5, 0.75, F), ("fit", 0.75, 5.0, F), "x"]),
        ("SIGMOID", sig, 1 / 4, 0.0, [-8.0, -2.0, 2.0, 8.0],
         ["zero", ("fit", -8.0, -2.0, F), ("fit", -2.0, 2.0, [0, 1, 3, 5]), ("mirror", 1, "one"), "one"]),
        ("EXP", math.exp, 1 / 5, 1.0, [-10.0],
         ["zero", ("fit", -10.0, 0.0, list(range(11)))]),
    ]


def build(scale, shift, breaks, specs, f):
    pieces = []
    for s in specs:
        if s == "zero":
            pieces.append({})
        elif s == "x":  # x = (u - shift) / scale
            pieces.append({0: -shift / scale, 1: 1 / scale})
        elif s == "one":
            pieces.append({0: 1.0})
        elif s[0] == "fit":
            _, a, b, pw = s
            pieces.append(fit_powers(f, a, b, pw, scale=scale, shift=shift)[1])
        else:  # mirror: f(x) = base(x) - g(-x) with g the piece k; base x -> x + g(-x)?
            _, k, kind = s
            g = pieces[k]
            assert shift == 0.0
            # SiLU/GeLU: f(x) = x + f(-x); sigmoid: f(x) = 1 - f(-x)
            m = {i: (-1) ** i * c * (1 if kind == "x" else -1) for i, c in g.items()}
            if kind == "x":
                m[1] = m.get(1, 0.0) + 1 / scale
            else:
                m[0] = m.get(0, 0.0) + 1.0
            pieces.append(m)
    return pieces


def eval_pw(scale, shift, breaks, pieces, x):
    i = sum(1 for t in breaks if x >= t)
    u = scale * x + shift
    return sum(c * u ** p for p, c in pieces[i].items())


if __name__ == "__main__" and "--tables" in sys.argv:
    for name, f, scale, shift, breaks, specs in accurate_tables():
        pieces = build(scale, shift, breaks, specs, f)
        lo, hi = (-40.0, 0.0) if name == "EXP" else (-40.0, 40.0)
        n = 400001
        err = max(abs(eval_pw(scale, shift, breaks, pieces, lo + (hi - lo) * i / (n - 1)) - f(lo + (hi - lo) * i / (n - 1))) for i in range(n))
        print(f"// {name}: max abs error {err:.3e} on [{lo}, {hi}]")
        print(f"scale {scale!r} shift {shift!r} breaks {breaks}")
        for pc in pieces:
            d = max(pc) if pc else -1
            print("    &[" + ", ".join(repr(pc.get(i, 0.0)) for i in range(d + 1)) + "],")
