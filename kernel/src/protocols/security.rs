//! The security argument for every protocol this project designed or adapted itself.
//!
//! This module has no code. For each protocol it lists (a) what each party receives,
//! round by round and peer by peer; (b) why a party's whole view of the protocol can be
//! simulated from its own inputs, naming the mask that hides each message from its
//! receiver; (c) the input range the protocol assumes, and what happens outside it; and
//! (d) how the protocol's output feeds the next one. The tests in `kernel/tests/privacy.rs`
//! check the claims of (b) statistically on the real implementation.
//!
//! # Model
//!
//! - **Parties.** Three servers `P_0, P_1, P_2` hold replicated shares: a value `x` in
//!   `Z_{2^k}` is `x = x_0 + x_1 + x_2 mod 2^k`, and `P_i` holds the pair `(x_i, x_{i+1})`
//!   (indices mod 3). Bits and bit-sliced words are shared the same way over XOR. The
//!   *user* (the output client) holds no share and no key; it only receives the final
//!   output. The model owner's weights and guidance tensors and the user's labels are
//!   shared by their owners with `share_locally` (two uniform components and a third
//!   that completes the sum); the initial noise comes from a public seed and is public.
//! - **Adversary.** Semi-honest (honest but curious), static, corrupting at most one
//!   server (honest majority). It follows the protocol and tries to learn something from
//!   everything it sees: its shares, its PRSS keys and every message it receives. Two
//!   colluding servers hold all three components of every value and learn everything;
//!   a server that deviates from the protocol is not covered (messages carry no MACs).
//! - **Security notion.** For each server there is a simulator that, given only that
//!   server's inputs (its shares of the inputs, its keys) and the public parameters
//!   (shapes, the model graph, the fixed-point format, hence the whole sequence of
//!   protocol calls and every message length), outputs a view indistinguishable from the
//!   real one. Servers have no output of their own. The user's view must be simulatable
//!   from the output alone.
//! - **PRSS and the PRF.** Key `k_i` is known to `P_{i-1}` and `P_i` (the same pattern as
//!   components), so each server holds two pair keys and lacks exactly one: `P_i` lacks
//!   `k_{i+2}`, the key its two peers share. A third key `k_c` is known to all three. Each
//!   key drives a ChaCha8 keystream. *Uniform* below means computationally
//!   indistinguishable from independent uniform values, for anyone who does not hold the
//!   key, under the assumption that ChaCha8 with a uniform key is a pseudorandom function
//!   of the stream position (outputs at distinct positions look independent even given
//!   the outputs at other positions); see `PrssRng` for the choice of 8 rounds (the best
//!   published attacks reach 7). Every draw consumes fresh positions, so
//!   no mask is ever used twice in messages to the same receiver unless stated.
//! - **Channels.** Links are private and authenticated: the TCP transport runs a Noise
//!   `IK` handshake with pinned keys. The plaintext mode of `cipherdm-transport-tcp` is
//!   for benchmarks only: key contributions travel over the links, so anyone who reads
//!   the link between two servers (including the third server, if it can sniff the
//!   network) learns their pair key and with it every mask of that pair.
//! - **Not covered.** Side channels on a server's own machine (timing, memory); seeded
//!   set-up entropy (`seeded_entropy`, `MemConfig::seed`), which makes every key public
//!   and exists for tests and reproducible benchmarks only.
//!
//! # The masking lemma, and why everything composes
//!
//! Every message a server receives, in every protocol below (set-up and the openings
//! aside, which exchange keys and reveal values by design), has the form
//! `M = c + ρ` (or `c ⊕ ρ`) where `c` is computed by the sender and `ρ` is a fresh output
//! of a stream the receiver does not hold; where several messages to one receiver share
//! a mask, the map from the receiver's unknown masks to those messages is a bijection
//! (stated per protocol). Hence each message is uniform *given everything the receiver
//! saw before* (its shares, its keys, earlier messages), whatever `c` is, and by the
//! chain rule the whole sequence of messages a server receives in a session is uniform
//! and independent of every secret. The simulator for `P_i` draws uniform strings of the
//! (public) message lengths and runs `P_i`'s code on them; the shares `P_i` computes
//! along the way are functions of that simulated view.
//!
//! This is what makes sequential composition immediate in the semi-honest setting: a
//! protocol's messages are masked no matter how its input sharing was produced. The
//! usual formulation — each protocol outputs a *fresh* sharing — also holds, and the
//! sections below say where the fresh components come from: `P_i` always ends a
//! protocol with at least one output component that is uniform given its earlier view
//! (a received masked value or a fresh PRF output).
//!
//! **Round merging.** Protocols that do not depend on each other run side by side
//! (`Branch::join`); messages to one peer in one round are concatenated into one
//! transport message. Each part keeps its own mask, and branches draw from PRSS streams
//! forked at the join (`Prss::fork`: new keys taken from each stream, identically by
//! both members of a pair, unknown to the third server since they come from a stream it
//! lacks). A concatenation of independently masked parts is uniform, and its length is
//! fixed by public shapes and the public schedule, so the argument and the simulator are
//! unchanged.
//!
//! **Out-of-range inputs.** Every protocol's control flow and message lengths are fixed
//! by public parameters, and every message is masked whatever the values. An input
//! outside a protocol's stated range therefore changes what is *computed* (a wrong bit,
//! a large error), never what a server *sees*: out of range means a wrong result, never
//! a leak to a server. The user receives the wrong result; since the ranges and the
//! errors depend only on the secret values and on uniform randomness (the re-randomised
//! splits below), the user's view stays simulatable from the value it receives.
//!
//! # Summary
//!
//! Roles rotate: `L` is the lead of an asymmetric protocol, `L+1` its successor, `L+2`
//! the third server. "Stream of `P_a, P_b`" is the PRSS stream of the pair's key.
//!
//! | protocol | rounds | what each party receives | mask unknown to the receiver | range |
//! |---|---|---|---|---|
//! | set-up | 1 | from each peer: its pair-key and common-key contributions | none (keys, not data) | — |
//! | `share_input` | 1 | owner's successor: `v − x_o` | `x_o`, stream of the owner and its predecessor | any |
//! | `reshare`, `mul`, `dot`, `matmul` | 1 | `P_i` from `P_{i+1}`: `z_{i+1} + α_{i+1}` | `F(k_{i+2})` inside `α_{i+1}`, stream of `P_i`'s two peers | any (exact) |
//! | `output_to_client` | 1 | servers: as `reshare`; user: three pairs of a fresh sharing | servers: as `reshare`; user: `F(k_0)`, `F(k_2)` | any |
//! | `open_to` | 1 | `to`: the component it lacks | none: reveals `x` to `to` by design (tests only) | any |
//! | `and` (per level) | 1 | `P_i` from `P_{i+1}`: `z_{i+1} ⊕ α_{i+1}` | `F(k_{i+2})`, stream of `P_i`'s two peers | any |
//! | `msb_bits`, `msb`, `a2b` | `2 + ⌈log2(bits−1)⌉`; 8; 8 | `L+1` from `L`: `S ⊕ r`; then one `and` message per level | `r`, stream of `L, L+2`; then as `and` | `msb_bits`: `abs(x) < 2^(bits−1)`; others exact |
//! | `b2a` | 2 | `L+2`: `a − r` from `L` and `±r − σ` from `L+1`; `L+1`: `t_2 − ρ` from `L+2`; `L`: nothing | `r, σ`, stream of `L, L+1`; `ρ`, stream of `L, L+2` | any bit |
//! | `trunc` | 2 | `L+1`: `T0 − ρ`, `p'` from `L` and `t2` from `L+2`; `L`: `ℓ` from `L+1`; `L+2`: nothing | `ρ, s, λ`, stream of `L, L+2`; `μ`, stream of `L+1, L+2` | `x ∈ [−2^(k−2), 2^(k−2))` |
//! | `additive_trunc` | 2 | as `trunc`, but `L` gets `e1` from `L+1` and `e2` from `L+2` instead of `ℓ`; plus the swap: `L+1` and `L+2` each get the other's masked summand | as `trunc`, and `ν` (stream of `L+1, L+2`); `F(k_L)` for `L+1`, `F(k_{L+1})` for `L+2` | the *sum* in the truncation range |
//! | `sign::negative` | `max(1 + ⌈log2 nb⌉, 2) + 1` | `L+1`: block tables and the top bit from `L`, Beaver openings from `L+2`, `L+2`'s opening share; `L+2`: the dealt `c_2` from `L`, Beaver openings and the opening share from `L+1`; `L`: both opening shares | tables `α, α', γ` and `a_2, b_2` (stream of `L, L+2`); `c_1, a_1, b_1` (stream of `L, L+1`); `κ` (stream of `L+1, L+2`); `r` (PRSS bits, injected) | `x ∈ [−2^(bits−1), 2^(bits−1))` |
//! | `piecewise` | see `poly` | the union of its `msb_bits`, `b2a`, truncations and products | as those | `abs(x) < 2^13`, result below `2^14` |
//! | `reciprocal`, `rsqrt`, `softmax`, norms, `max` | see their modules | unions of the above | as those | see below |
//!
//! # Set-up and PRSS (`Party::setup`, `prss`)
//!
//! **(a)** One round. `P_i` sends `P_{i+1}` a fresh 32-byte contribution `c_i^→` and
//! `P_{i−1}` a fresh `c_i^←`, and both of them its common contribution `c_i`. The pair
//! key of `(P_{i−1}, P_i)` is `c_{i−1}^→ ⊕ c_i^←`; the common key is `c_0 ⊕ c_1 ⊕ c_2`.
//!
//! **(b)** The key of a pair is uniform if either member's entropy is, and is never
//! sent to the third server (private channels). The common key is uniform if any one
//! server's entropy is; it is known to all three and *never masks anything*: it only
//! supplies values that every server knows but no single server chooses (truncation's
//! offset `ζ`). Zero shares `α_i = F(k_i) − F(k_{i+1})` sum to zero (the sum telescopes),
//! where `F(k_i)` is a fresh output of the stream of `k_i`. `P_j` computes its own `α_j`,
//! and of `α_{j+1} = F(k_{j+1}) − F(k_{j+2})` and `α_{j+2} = F(k_{j+2}) − F(k_j)` it lacks
//! the term `F(k_{j+2})`. A random share takes `x_i` from `F(k_i)`: `P_i` lacks
//! `x_{i+2} = F(k_{i+2})`.
//!
//! **(c)** Both members of a pair must draw the same amounts in the same order, which
//! holds because all servers run the same public protocol sequence (the lead rotation of
//! `Branch::next_lead` is a public counter). A desynchronised pair breaks correctness,
//! not secrecy: masks are still drawn from streams the receiver lacks.
//!
//! # Resharing, products, inputs and outputs (`arith`)
//!
//! **`reshare`, `mul`, `dot`, `matmul`.** **(a)** One round. `P_i` holds an additive
//! summand `z_i` (for `mul`, the local product `x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i`;
//! for `dot`/`matmul`, sums of them), adds `α_i = F(k_i) − F(k_{i+1})` and sends
//! `z'_i = z_i + α_i` to `P_{i−1}`. So `P_i` receives from `P_{i+1}` the value
//! `z'_{i+1} = z_{i+1} + F(k_{i+1}) − F(k_{i+2})`.
//! **(b)** `F(k_{i+2})` is drawn from the stream of `P_{i+1}, P_{i+2}`, unknown to `P_i`,
//! so the message is uniform; `P_i` receives from one peer only.
//! **(c)** No range: ring arithmetic is exact (fixed-point products are truncated by the
//! protocols below).
//! **(d)** Output `(z'_i, z'_{i+1})`: the component `z'_{i+1}` is fresh for `P_i` (the
//! received uniform value), and the component `P_i` lacks, `z'_{i+2}`, contains
//! `F(k_{i+2})` as well.
//!
//! **`share_input`.** **(a)** One round. The owner `P_o` draws `x_o = F(k_o)` (stream of
//! `P_{o−1}, P_o`) and sends `x_{o+1} = v − x_o` to `P_{o+1}`; `x_{o+2} = 0`.
//! **(b)** `P_{o+1}` lacks `k_o`, so the message is uniform; `P_{o+2}` receives nothing and
//! holds `(0, x_o)`, independent of `v`. **(d)** The sharing is *not* uniform as a whole
//! (one component is zero): this is harmless for secrecy by the masking lemma, but it is
//! why truncation re-randomises its split (below).
//!
//! **`open_to`** (and `open`, `open_bool`). `P_{to−1}` sends `x_{to−1}` to `to`, which
//! learns `x` by design; its view is the one component it lacked, `x − x_to − x_{to+1}`,
//! so it is simulatable from `x` and its own shares. None of the diffusion pipeline's
//! protocols opens anything to a server; these functions serve tests.
//!
//! **`output_to_client`** (current behaviour: the output is re-randomised).
//! **(a)** One server round, then delivery. Each `P_i` adds `α_i` to its component `x_i`
//! and reshares exactly like `reshare`: it receives
//! `z'_{i+1} = x_{i+1} + F(k_{i+1}) − F(k_{i+2})` from `P_{i+1}`. It hands the user the
//! pair `(z'_i, z'_{i+1})`.
//! **(b)** Servers: as `reshare` (mask `F(k_{i+2})`). User: it receives
//! `z'_0 = x_0 + F(k_0) − F(k_1)`, `z'_1 = x_1 + F(k_1) − F(k_2)` and
//! `z'_2 = y − z'_0 − z'_1` (each twice, from the two servers holding it). It holds no
//! key; `F(k_0)` makes `z'_0` uniform and `F(k_2)`, from an independent stream, makes
//! `z'_1` uniform given `z'_0`. So the three pairs are a uniformly random replicated
//! sharing of `y`, simulated from `y` alone: pick `z'_0, z'_1` uniform, set `z'_2`.
//! Without this step the user would receive the components the last protocol left,
//! which carry its structure: after a truncation, `y_2 ≡ B' >> m (mod 2^(k−m))` exposes
//! the high bits of the pair's part of the split; after `share_input` or a public
//! constant, components are zero or public.
//!
//! # AND gates (`boolean::and`)
//!
//! **(a)** One round per call (all gates of a circuit level go out together). `P_i`
//! computes `z_i = (x_i ∧ (y_i ⊕ y_{i+1})) ⊕ (x_{i+1} ∧ y_i) ⊕ F(k_i) ⊕ F(k_{i+1})` per
//! 64-gate word and sends it to `P_{i−1}`; it receives `z_{i+1}` from `P_{i+1}`.
//! **(b)** `z_{i+1}` contains `F(k_{i+2})` (stream of `P_{i+1}, P_{i+2}`, unknown to
//! `P_i`): every bit of every word is masked, including padding bits past the last
//! element. Each level draws fresh positions, so the messages of successive levels are
//! independent. **(c)** None. **(d)** `(z_i, z_{i+1})` with `z_{i+1}` fresh.
//!
//! # Comparisons (`compare`: `split_operands`, `msb_bits`, `msb`, `a2b`)
//!
//! **(a)** Round 1 (`split_operands`): the lead `L` bit-slices its local sum
//! `S = x_L + x_{L+1}` (low `bits` planes), XORs it with words `r` drawn from the stream
//! of `L, L+2`, and sends `S ⊕ r` to `L+1`. Then `S` is shared as `(r, S ⊕ r, 0)` and
//! `B = x_{L+2}` as `(0, 0, B)` (components `L, L+1, L+2`) at no cost. Rounds 2 onwards:
//! the carry circuit of `S + B` — one AND level for the generate bits, then a tree
//! (`msb_bits`: `⌈log2(bits−1)⌉` levels of (generate, propagate) combinations) or a
//! Kogge–Stone prefix (`a2b`: 6 levels for `k = 64`) — each level one `and` call; every
//! XOR is local.
//! **(b)** `L+1` lacks the stream of `L, L+2`, so `S ⊕ r` is uniform; `L` and `L+2`
//! receive nothing in round 1. Each AND level gives each party one message masked as in
//! `and`. Joint view of `L+1`: its masks in round 1 and in every AND level all come from
//! the one stream it lacks (of `L, L+2`, i.e. `k_L`), at distinct positions, hence
//! independent: the whole sequence is uniform. The same holds for the other two parties
//! (AND masks only).
//! **(c)** `msb_bits(x, bits)` returns bit `bits−1` of `x mod 2^bits`, which is the sign
//! of `x` for `x ∈ [−2^(bits−1), 2^(bits−1))` (the approximations use `bits = f + 15 = 33`,
//! valid for `|x| < 2^14` in real terms). Outside that range it returns a wrong bit, a
//! deterministic function of `x`; the messages are masked exactly as before, so the view
//! is unchanged: a wrong result, never a leak. `msb` (`bits = k`) and `a2b` are exact for
//! every ring element; `lt`, `gt` and friends need `x − y` not to wrap, i.e. operands in
//! `[−2^(k−2), 2^(k−2))`.
//! **(d)** The output bits include the last AND level's outputs, whose received
//! component is fresh for each party.
//!
//! # Bit injection (`select::b2a`)
//!
//! The bit is `b = b_L ⊕ b_{L+1} ⊕ b_{L+2}`; `L` knows `a = b_L ⊕ b_{L+1}`, the two
//! others know `d = b_{L+2}`, and `b = d + a·(1 − 2d)` as integers.
//!
//! **(a)** Round 1: `L` sends `L+2` the value `e = a − r`; `L+1` sends `L+2` the value
//! `m_1 = t_1 − σ` with `t_1 = r·(1 − 2d)`. Round 2: `L+2` sends `L+1` the value
//! `m_2 = t_2 − ρ` with `t_2 = e·(1 − 2d) + d`. `L` receives nothing. Here `r` and `σ` are
//! drawn from the stream of `L, L+1` and `ρ` from the stream of `L, L+2`.
//! **(b)** `L+2` lacks the stream of `L, L+1`. Its two messages come from different
//! peers and share the mask `r`: `(e, m_1) = (a − r, ±r − σ)`. For every `a, d` the map
//! `(r, σ) ↦ (e, m_1)` is a bijection of `Z_{2^k}^2`, so the pair is *jointly* uniform;
//! `σ` is what makes it so (without it, `e + m_1 = a` whenever `d = 0`). `L+1` lacks the
//! stream of `L, L+2`, so `m_2` is uniform (masked by `ρ`).
//! **(c)** Any one-plane boolean share; the result is the exact integer bit.
//! **(d)** Components: `ρ` (component `L`, a fresh PRF output of the stream of `L, L+2`),
//! `σ` (component `L+1`, a fresh PRF output of the stream of `L, L+1`), and `m_1 + m_2`
//! (component `L+2`, held by `L+1` and `L+2`). `L+1` lacks `ρ`, `L+2` lacks `σ`; `L`
//! holds both fresh values and lacks `b − ρ − σ`.
//!
//! # Truncation (`trunc`: `trunc`, `additive_trunc`, `trunc_core`)
//!
//! Call the lead `P0`, its successor `P1` and the third party `P2` (the roles rotate).
//! The input is written as `x' = x + 2^(k−2) = A + B mod 2^k`, with `A` known to `P0`
//! (the offset included) and `B` known to `P1` and `P2`: for a replicated input
//! `A = x_0 + x_1 + 2^(k−2)`, `B = x_2`; for an additive input (a product before
//! resharing) `A = z_0 + α_0` and `B = (z_1 + α_1) + (z_2 + α_2)`.
//!
//! **Re-randomised split (current behaviour).** All three servers draw a common uniform
//! `ζ` (`Prss::draw_common_bits`, the common key; only `ζ mod 2^m` matters), and the protocol runs on
//! `A' = A + ζ` (at `P0`) and `B' = B − ζ` (at `P1`, `P2`), still `A' + B' = x'`.
//! *Correctness for any split:* write `w` for the wrap bit `[A' + B' ≥ 2^k]` (as
//! integers in `[0, 2^k)`), with `x' < 2^(k−1)`. If neither top bit is set,
//! `A' + B' < 2^k` and `w = 0`. If one is, `A' + B' ≥ 2^(k−1) > x'`, so the sum is not
//! `x'` itself and must be `x' + 2^k`: `w = 1`. Hence `w = msb(A') ∨ msb(B')`.
//! *Rounding:* let `a_m = A' mod 2^m`, `b_m = B' mod 2^m`, `r = x mod 2^m`
//! (`= x' mod 2^m` as `m ≤ k−2`). Then `a_m + b_m ∈ {r, r + 2^m}`, the low carry is
//! `δ = [a_m + b_m ≥ 2^m] = [b_m > r] = [a_m > r]`, and the result is
//! `floor(x/2^m) + e` with `e = 1 − δ = [b_m ≤ r]`. Because `ζ` is uniform and
//! independent of `B` and `x`, `b_m` is uniform and `P(e = 1) = (r + 1)/2^m` — unbiased
//! stochastic rounding even where `B` is not uniform (an owner-led input has a zero
//! component, a public value or a product with a public power of two has structured
//! components; before `ζ` such inputs always rounded the same way).
//!
//! **(a) Messages.** Write `U = 2^(k−m)`, `p = msb(A')` (known to `P0`) and
//! `q = msb(B')` (known to `P1` and `P2`; the module docs call them `a` and `b`), so
//! that `w = p + q − p·q`. `P0` and `P2` draw `s`, `ρ`, `λ` from their stream; `P1` and
//! `P2` draw `μ`, `ν` from theirs (`s, λ, μ, ν` are used mod `2^m`, and every packed
//! value below is mod `2^m`, in `⌈m/8⌉` bytes).
//! - (additive input only, round 1) `P1` and `P2` swap their re-randomised summands:
//!   `P1` receives `z_2 + α_2`, `P2` receives `z_1 + α_1`;
//! - (round 1) `P0 → P1`: `T0 − ρ` (one ring element), where
//!   `T0 = (A' >> m) − p·U − (2^(k−2−m) − 1)`, and `p' = p + s` (packed);
//! - (round 1; round 2 for an additive input, since `P2` needs `B'`) `P2 → P1`:
//!   `t2 = λ − q·s`;
//! - replicated input, (round 2) `P1 → P0`: `ℓ = −q·(1 − p') − μ + t2`, once `P1` has
//!   `t2`;
//! - additive input, (round 2) `P1 → P0`: `e1 = −q·(1 − p') − μ − ν` and `P2 → P0`:
//!   `e2 = ν − q·s` (`P1` cannot wait for `t2`, which comes in the same round);
//! - `P2` receives nothing else.
//!
//! The cross term of `w` is thus split without any exchange between the two bit
//! holders: `p·q = q·p' − q·s`, the first term computable by `P1`, the second by `P2`.
//!
//! **(b) Views.**
//! - `P1` receives `T0 − ρ` and `p'` from `P0` and `t2` from `P2`. `T0 − ρ` is masked by
//!   `ρ`, `p'` by `s` and `t2` by `λ`, all three from the stream of `P0, P2`, unknown to
//!   `P1`, at distinct positions. `p'` (from `P0`) and `t2` (from `P2`) both involve `s`,
//!   but `P1` knows `q` and the map `(s, λ) ↦ (p + s, λ − q·s)` is a bijection of
//!   `(Z_{2^m})^2` for either value of `q`: the two messages from different peers are
//!   jointly uniform. For an additive input the swapped `z_2 + α_2` is masked by `F(k_0)`
//!   inside `α_2`, again the stream of `P0, P2`, at yet other positions. `P1` never
//!   learns `p` or `w`. `ζ` is known to `P1` and hides nothing from it: without `ρ`,
//!   `T0 − ρ` would reveal bits `m … k−1` of `A'`, hence (knowing `ζ` and `x_1`) the high
//!   bits of `x_0` and of `x`.
//! - `P0` receives, for a replicated input, `ℓ = −q·(1 − p) − q·s + λ − μ` from `P1`:
//!   it knows `s`, `p`, `λ`, and `μ` (stream of `P1, P2`, unknown to `P0`) masks the
//!   rest. For an additive input it receives `e1` from `P1` and `e2` from `P2`; `μ` and
//!   `ν` make `(μ, ν) ↦ (e1, e2)` a bijection, so the pair is jointly uniform. The joint
//!   view is what matters there: each message alone is masked (`e2` by `ν`, `e1` by `μ`
//!   and `ν`), but their sum `e1 + e2 = −q·(1 − p) − μ` is masked by `μ` only; without
//!   `μ` it would reveal `q` wherever `p = 0`.
//! - `P2` receives nothing in the core; for an additive input, `z_1 + α_1`, masked by
//!   `F(k_1)` inside `α_1` (stream of `P0, P1`, unknown to `P2`).
//!
//! **(c) Range.** `x ∈ [−2^(k−2), 2^(k−2))` and `1 ≤ m ≤ k−2` (`m = 0` returns the input;
//! an additive input with `m = 0` is just `reshare`). For a product, the range applies
//! to the product at scale `2f` (`|x·y| < 2^(k−2−2f)` in real terms), for a sum of
//! products to the sum. Outside the range `x'` is not in `[0, 2^(k−1))`, the identity
//! `w = msb(A') ∨ msb(B')` can fail, and the result is off by `2^(k−m)` (mod `2^k`): a
//! large error, with a probability that depends on `x` and on the uniform `A'`. The view
//! is unchanged, since every message is masked by `ρ`, `s`, `λ`, `μ`, `ν` or a zero share
//! whatever `A'` and `B'` are: a wrong result, never a leak.
//!
//! **(d) Output.** `y_0 = ρ − λ·U`, a fresh PRF value of the stream of `P0, P2` (held by
//! `P0` and `P2`); `y_2 = (B' >> m) + μ·U` (held by `P1` and `P2`), whose top `m` bits
//! are fresh (`μ`) and whose low bits `B' >> m` both holders know already; and
//! `y_1 = (T0 − ρ) + ℓ·U` (`ℓ = e1 + e2 + λ` for an additive input) as `P0` computes it,
//! `= (T0 − ρ) + (t2 − q·(1 − p') − μ)·U` as `P1` does (held by both). The sum is
//! `(A' >> m) + (B' >> m) − w·U − (2^(k−2−m) − 1) = floor(x/2^m) + e`. `P1` lacks
//! `y_0` (`ρ`, `λ`); `P0` lacks `y_2`, hidden by `B'` and `μ`; `P2` knows `ρ`, `λ`, `μ`
//! but lacks `y_1`, which contains the lead's `A' >> m`. Each party's components are
//! functions of its inputs, fresh PRF outputs and the uniform messages it received, so
//! the masking lemma carries over to whatever protocol comes next.
//!
//! **Remaining caveat: the rounding bit is known to the servers.**
//! `e = [b_m ≤ r] = [a_m ≤ r]` is a deterministic function of `x` and of *either* side
//! of the split: the pair knows `b_m = B' mod 2^m`, the lead knows `a_m = A' mod 2^m`.
//! Both are uniform and independent of `x`, so this costs nothing as long as no server
//! sees anything that depends on the result in the clear. But a truncated value `y`
//! opened to a server would reveal, beyond `y` itself, the comparison bit of
//! `x mod 2^m` against the offset `c` that server knows (`c = b_m` for the pair,
//! `c = a_m` for the lead): it would learn `x ∈ [2^m·(y−1) + c, 2^m·y + c)` exactly,
//! where a private coin leaves a triangular spread over `[2^m·(y−1), 2^m·(y+1))`.
//! Formally the protocol realises stochastic rounding whose uniform offset is disclosed
//! to the adversary. The protocols never open truncated values to servers; the only
//! output goes to the user, who knows neither `a_m` nor `b_m`, so for the user the
//! rounding is ordinary stochastic rounding. A user who colluded with a server would
//! learn these comparison bits of intermediate values; that collusion is outside the
//! model.
//!
//! # Piecewise polynomials (`poly`)
//!
//! **(a, b)** `piecewise` composes: one `msb_bits` call of width `f + 15` over the `J·n`
//! differences `x − t_j` and one `b2a` (the selection bits `c_j = [x < t_j]`); the change
//! of variable `v = (scale·x + shift)/2^s` (nothing when the scale is 1, a `trunc` by `j`
//! bits when it is `2^−j`, otherwise a multiplication by the public scale encoded at `g`
//! bits and a `trunc` by `g`; the shift is added locally); the powers of `v` (levels of
//! `mul_fixed`, i.e. `additive_trunc`); and finally a single `additive_trunc` by `g` bits.
//! It sends no message of its own, so its view is the union of those protocols' views,
//! uniform by their sections and the masking lemma.
//!
//! **The single truncation.** Each coefficient is encoded with `g = min(k − f − 16, 48)`
//! fraction bits (30 for `k = 64`, `f = 18`); each product coefficient × power is at
//! scale `f + g` (the constant term is encoded at `f + g`), and each `c_j·Q_j(v)`, with
//! `Q_j = P_{j−1} − P_j`, is a local product (a 3-out-of-3 additive share). The sum
//! `z = P_J(v) + Σ_j c_j·Q_j(v)` is formed locally and truncated *once*. The truncation
//! range applies to that sum: `|z| < 2^(k−2)` at scale `f + g`, i.e. the selected piece's
//! value below `2^(k−2−f−g) = 2^14` in real terms. Individual terms may be far larger or
//! wrap around the ring — a piece evaluated far from its segment, or powers of a large
//! `v` that overflowed their own truncations — but with exact bits `c_j ∈ {0, 1}` the
//! sum telescopes to the piece containing `x` *exactly in the ring*, so those terms
//! cancel before the truncation ever sees them. (The approximation tables must keep the
//! powers that the *containing* piece uses within their ranges on its segment.)
//!
//! **(c)** `|x| < 2^13`. Outside it, a comparison may return a wrong bit (a wrong piece is
//! selected) and the final truncation may see a sum out of range (a large error). As
//! everywhere, wrong results, never a leak.
//!
//! The Paterson–Stockmeyer path (`masked_paterson_stockmeyer`) and `compound_exp` are
//! compositions of the same pieces (`trunc`, `additive_trunc` of `v^4·B + A`, exact
//! `mul` by the selection bit), with the same argument; the zero below the break is
//! exact in the ring whatever the polynomial's value there.
//!
//! # Compositions (`select`, `reduce`, `inverse`, `norm`)
//!
//! `select`, `relu` and `clamp` are `msb` + `b2a` + `mul`; `max`/`argmax` are levels of
//! `msb_bits` + `b2a` + `mul`; `reciprocal`/`rsqrt` are comparisons (`msb_bits` +
//! `b2a`, the normalisation factors being linear in the bits), truncations of public
//! multiples of `x`, exact ring products of bits and values, `piecewise` and Newton
//! steps of products with fused truncation; `softmax`, `layer_norm` and `group_norm` add
//! public-constant truncations and local sums. They send no message of their own (only
//! the protocols above talk, possibly side by side in merged rounds) and none branches
//! on a secret, so by the masking lemma their views are uniform.
//!
//! Their ranges are those of their parts, stated in their modules: `reciprocal`/`rsqrt`
//! need `x ∈ [2^lo, 2^hi)` with `−f ≤ lo < hi ≤ 13` (comparisons of width `f + hi + 1`);
//! `softmax` needs `|x| < 2^12` and rows short enough for the reciprocal's range; a norm
//! needs each row's `Σ y²` below `2^(k−2−2f)` (its truncation at scale `2f`) and
//! `var/d² < 2^13`. Every fixed-point product must satisfy its truncation's range.
//! Outside, results are wrong (they are not errors: the protocol cannot see the
//! values), and nothing leaks.
//!
//! # What this argument does not give
//!
//! - Security against a server that deviates from the protocol (no integrity checks),
//!   or against two colluding servers.
//! - Private rounding coins: truncation's rounding bit is known to the servers (see
//!   *Truncation*); harmless while nothing truncated is opened to a server.
//! - Secrecy of shapes, of the model graph and of the number of sampling steps: they fix
//!   the message lengths and the schedule and are public.
//! - Anything when the links are not private (plaintext transport mode) or when set-up
//!   entropy is seeded.
//!
//! # Sign in five rounds (`sign::negative`)
//!
//! The argument is in the [`sign`](super::sign) module's documentation (section
//! *Views*): every table entry `P1` receives is masked by its own `α` or `α'`; the
//! Beaver openings each of `P1`, `P2` receives are masked by triple parts from the
//! dealer's stream with the other one; the dealer `P0` knows the triples but sees no
//! opening, and of the final opening it receives two shares masked by `κ` (stream of
//! `P1`, `P2`), so it learns `m = [x < 0] ⊕ r` only, which `r` (injected from three
//! PRSS components, each unknown to one party) masks for everyone. A dealer that also
//! saw a Beaver opening would learn the value it masks: the protocol relies on `P0` not
//! colluding, as every protocol here does.
