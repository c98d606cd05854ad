// CPU pair kernels of the Cartesian-moment potential (ssehpc.ml.model), built on first use by
// ssehpc.ml.kernels (torch.utils.cpp_extension.load_inline).  Same mathematics as the torch
// path (MomentPotential.atomic_moments and MomentPotential.pair_gradient):
//
//   B_n(r)  = sqrt(2/rc) sin(n pi r/rc)/r f_c(r/rc),  f_c(d) = 1 - 28 d^6 + 48 d^7 - 21 d^8
//   Y_k(u)  = coef_k u_x^a u_y^b u_z^c                (compact Cartesian monomials, l = a+b+c)
//   A[s, n, k]  += B_n(r_p) Y_k(u_p) / Nbar           (s = slot of pair p)
//   g_p[m] = u sum_k Y_k sum_n G[s, n, m, k] B'_n / Nbar
//          + (grad_u p - (u . grad_u p) u) / r,   p(u) = sum_k h_k Y_k(u),  h_k = sum_n G B_n / Nbar
//
// One pass over the pairs; sin(n x) and cos(n x) by the Chebyshev recurrence (one sin/cos per
// pair), in the tensors' precision; the moment pass may keep the per-pair basis for the force pass.  Pairs sorted by slot row (the neighbour list's
// order) are split between threads at centre-atom boundaries, so the moment scatter needs no atomics.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace {

constexpr int kMaxRadial = 32;
constexpr int kMaxAng = 20;  // lmax <= 3
constexpr int kMaxMembers = 64;

// Model constants of the pair basis.
struct Basis {
  int n_radial;
  int n_ang;
  double cutoff;
  double floor;  // radial_floor: B frozen below it, B' = 0 (0: none)
  double scale;  // 1 / Nbar
  int exps[kMaxAng][3];
  double coef[kMaxAng];
};

Basis make_basis(int64_t n_radial, const torch::Tensor& exps, const torch::Tensor& coef, double cutoff,
                 double floor, double avg_neighbors) {
  TORCH_CHECK(exps.dtype() == torch::kInt64 && exps.dim() == 2 && exps.size(1) == 3,
              "exps must be an int64 [n_ang, 3] tensor");
  TORCH_CHECK(coef.dtype() == torch::kFloat64 && coef.dim() == 1 && coef.size(0) == exps.size(0),
              "coef must be a float64 [n_ang] tensor");
  TORCH_CHECK(n_radial >= 1 && n_radial <= kMaxRadial, "n_radial must be in 1..", kMaxRadial);
  TORCH_CHECK(exps.size(0) >= 1 && exps.size(0) <= kMaxAng, "1..", kMaxAng, " angular monomials (lmax <= 3)");
  Basis bs{};
  bs.n_radial = static_cast<int>(n_radial);
  bs.n_ang = static_cast<int>(exps.size(0));
  bs.cutoff = cutoff;
  bs.floor = floor;
  bs.scale = 1.0 / avg_neighbors;
  auto e = exps.contiguous().cpu();
  auto c = coef.contiguous().cpu();
  for (int k = 0; k < bs.n_ang; ++k) {
    for (int a = 0; a < 3; ++a) {
      bs.exps[k][a] = static_cast<int>(e.data_ptr<int64_t>()[3 * k + a]);
      TORCH_CHECK(bs.exps[k][a] >= 0 && bs.exps[k][a] <= 3, "monomial exponents must be in 0..3");
    }
    bs.coef[k] = c.data_ptr<double>()[k];
  }
  return bs;
}

// Per-pair basis in T: B_n / Nbar and B'_n / Nbar (n = 1..N, radial floor applied), Y_k and, if
// DY, dY_k/du (u unconstrained).  sin(n x), cos(n x) by the Chebyshev recurrence.
template <typename T, int N, int NA, bool DY>
struct PairBasis {
  const Basis& bs;
  const int n_radial, n_ang;
  T kn[kMaxRadial];
  T norm, inv_rc, rc, floor, pi_rc;

  explicit PairBasis(const Basis& b)
      : bs(b), n_radial(N ? N : b.n_radial), n_ang(NA ? NA : b.n_ang) {
    rc = static_cast<T>(b.cutoff);
    inv_rc = static_cast<T>(1.0 / b.cutoff);
    pi_rc = static_cast<T>(M_PI / b.cutoff);
    floor = static_cast<T>(b.floor);
    norm = static_cast<T>(std::sqrt(2.0 / b.cutoff) * b.scale);
    for (int n = 0; n < n_radial; ++n) kn[n] = static_cast<T>((n + 1) * M_PI / b.cutoff);
  }

  // Returns 1/r; fills u[3], b[N], db[N] (if DY), y[NA], dy[NA][3] (if DY).
  inline T eval(const T* x, T* u, T* b, T* db, T* y, T (*dy)[3]) const {
    const T r = std::sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
    const T ir = T(1) / r;
    u[0] = x[0] * ir; u[1] = x[1] * ir; u[2] = x[2] * ir;
    const bool frozen = floor > T(0) && r < floor;
    const T rr = frozen ? floor : r;
    const T irr = frozen ? T(1) / rr : ir;
    const T d = rr * inv_rc;
    const T d2 = d * d, d5 = d2 * d2 * d, d6 = d5 * d;
    const T fc = T(1) - T(28) * d6 + T(48) * d6 * d - T(21) * d6 * d2;
    const T dfc = (T(-168) * d5 + T(336) * d6 - T(168) * d6 * d) * inv_rc;
    const T x1 = pi_rc * rr;
    const T s1 = std::sin(x1), c1 = std::cos(x1), two_c1 = T(2) * c1;
    T s_prev = T(0), c_prev = T(1), s = s1, c = c1;
    for (int n = 0; n < n_radial; ++n) {
      const T sr = s * irr;  // sin(k r)/r
      b[n] = norm * sr * fc;
      if (DY) db[n] = frozen ? T(0) : norm * ((kn[n] * c - sr) * irr * fc + sr * dfc);
      const T s_next = two_c1 * s - s_prev, c_next = two_c1 * c - c_prev;
      s_prev = s; c_prev = c; s = s_next; c = c_next;
    }
    T pw[3][4];
    for (int a = 0; a < 3; ++a) {
      pw[a][0] = T(1); pw[a][1] = u[a]; pw[a][2] = u[a] * u[a]; pw[a][3] = pw[a][2] * u[a];
    }
    for (int k = 0; k < n_ang; ++k) {
      const int* e = bs.exps[k];
      const T cf = static_cast<T>(bs.coef[k]);
      const T px = pw[0][e[0]], py = pw[1][e[1]], pz = pw[2][e[2]];
      y[k] = cf * px * py * pz;
      if (DY) {
        dy[k][0] = e[0] ? cf * T(e[0]) * pw[0][e[0] - 1] * py * pz : T(0);
        dy[k][1] = e[1] ? cf * T(e[1]) * px * pw[1][e[1] - 1] * pz : T(0);
        dy[k][2] = e[2] ? cf * T(e[2]) * px * py * pw[2][e[2] - 1] : T(0);
      }
    }
    return ir;
  }
};

// Thread ranges over pairs [0, P) that never split the pairs of one centre atom i (sorted i).
std::vector<int64_t> centre_aligned_bounds(const int64_t* i, int64_t P, int threads, int64_t min_pairs) {
  std::vector<int64_t> b{0};
  bool sorted = true;
  for (int64_t p = 1; p < P && sorted; ++p) sorted = i[p] >= i[p - 1];
  const int64_t parts = std::min<int64_t>(threads, P / std::max<int64_t>(min_pairs, 1));
  if (sorted && parts > 1) {
    for (int t = 1; t < parts; ++t) {
      int64_t p = P * t / parts;
      if (p <= b.back()) continue;
      while (p < P && i[p] == i[p - 1]) ++p;
      if (p < P) b.push_back(p);
    }
  }
  b.push_back(P);
  return b;
}

void check_pairs(const torch::Tensor& rij, const torch::Tensor& idx, const char* what) {
  TORCH_CHECK(rij.device().is_cpu() && idx.device().is_cpu(), "the C++ pair kernels run on CPU tensors");
  TORCH_CHECK(rij.dim() == 2 && rij.size(1) == 3 && rij.is_contiguous(), "rij must be a contiguous [P, 3] tensor");
  TORCH_CHECK(idx.dtype() == torch::kInt64 && idx.is_contiguous() && idx.dim() == 1 && idx.size(0) == rij.size(0),
              what, " must be a contiguous int64 [P] tensor");
}

// Per-pair cache layout (T): B/Nbar [N], B'/Nbar [N], Y [NA], dY/du [NA][3], u [3], 1/r.
inline int64_t cache_width(int n_radial, int n_ang) { return 2 * n_radial + 4 * n_ang + 4; }

template <typename T, int N, int NA, bool CACHE>
void moments_impl(const Basis& bs, const T* x, const int64_t* slot, T* out, T* cache,
                  const std::vector<int64_t>& bounds) {
  const PairBasis<T, N, NA, CACHE> pb(bs);
  const int nr = pb.n_radial, na = pb.n_ang, w = nr * na;
  const int64_t cw = cache_width(nr, na);
  at::parallel_for(0, static_cast<int64_t>(bounds.size()) - 1, 1, [&](int64_t t0, int64_t t1) {
    T u[3], b[kMaxRadial], db[kMaxRadial], y[kMaxAng], dy[kMaxAng][3];
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t p = bounds[t]; p < bounds[t + 1]; ++p) {
        const T ir = pb.eval(x + 3 * p, u, b, db, y, dy);
        T* row = out + slot[p] * w;
        for (int n = 0; n < (N ? N : nr); ++n) {
          const T bn = b[n];
          T* dst = row + n * (NA ? NA : na);
          for (int k = 0; k < (NA ? NA : na); ++k) dst[k] += bn * y[k];
        }
        if (CACHE) {
          T* c = cache + p * cw;
          for (int n = 0; n < (N ? N : nr); ++n) { c[n] = b[n]; c[nr + n] = db[n]; }
          c += 2 * nr;
          for (int k = 0; k < (NA ? NA : na); ++k) c[k] = y[k];
          c += na;
          for (int k = 0; k < (NA ? NA : na); ++k) { c[3 * k] = dy[k][0]; c[3 * k + 1] = dy[k][1]; c[3 * k + 2] = dy[k][2]; }
          c += 3 * na;
          c[0] = u[0]; c[1] = u[1]; c[2] = u[2]; c[3] = ir;
        }
      }
    }
  });
}

template <typename T, int N, int NA, int MM>
void gradient_impl(const Basis& bs, const T* x, const int64_t* slot, const T* G, int64_t M_, int64_t P, T* out,
                   const T* cache, int64_t min_pairs) {
  const PairBasis<T, N, NA, true> pb(bs);
  const int nr = pb.n_radial, na = pb.n_ang;
  const int64_t M = MM ? MM : M_, cw = cache_width(nr, na);
  at::parallel_for(0, P, std::max<int64_t>(min_pairs, 1), [&](int64_t p0, int64_t p1) {
    T u_[3], b_[kMaxRadial], db_[kMaxRadial], y_[kMaxAng], dy_[kMaxAng][3];
    T h0[kMaxMembers * kMaxAng], h1[kMaxMembers * kMaxAng];
    const int64_t mk = M * (NA ? NA : na);
    for (int64_t p = p0; p < p1; ++p) {
      const T *b, *db, *y, (*dy)[3], *u;
      T ir;
      if (cache) {  // stored by the moment pass
        const T* c = cache + p * cw;
        b = c; db = c + nr; y = c + 2 * nr;
        dy = reinterpret_cast<const T(*)[3]>(c + 2 * nr + na);
        u = c + 2 * nr + 4 * na;
        ir = u[3];
      } else {
        ir = pb.eval(x + 3 * p, u_, b_, db_, y_, dy_);
        b = b_; db = db_; y = y_; dy = dy_; u = u_;
      }
      const T* gs = G + slot[p] * ((N ? N : nr) * mk);
      for (int64_t q = 0; q < mk; ++q) { h0[q] = T(0); h1[q] = T(0); }
      for (int n = 0; n < (N ? N : nr); ++n) {
        const T* gn = gs + n * mk;
        const T bn = b[n], dbn = db[n];
        for (int64_t q = 0; q < mk; ++q) {
          h0[q] += gn[q] * dbn;
          h1[q] += gn[q] * bn;
        }
      }
      for (int64_t m = 0; m < M; ++m) {
        const T* a0 = h0 + m * (NA ? NA : na);
        const T* a1 = h1 + m * (NA ? NA : na);
        T rad = T(0), g0 = T(0), g1 = T(0), g2 = T(0);
        for (int k = 0; k < (NA ? NA : na); ++k) {
          rad += a0[k] * y[k];
          g0 += a1[k] * dy[k][0];
          g1 += a1[k] * dy[k][1];
          g2 += a1[k] * dy[k][2];
        }
        const T f = rad - (g0 * u[0] + g1 * u[1] + g2 * u[2]) * ir;
        T* o = out + (p * M + m) * 3;
        o[0] = f * u[0] + g0 * ir;
        o[1] = f * u[1] + g1 * ir;
        o[2] = f * u[2] + g2 * ir;
      }
    }
  });
}

// Calls F<N, NA>() specialised for the common shapes, else the runtime-shaped F<0, 0>().
template <typename F>
void dispatch_shape(const Basis& bs, F&& f) {
  if (bs.n_radial == 8 && bs.n_ang == 10) return f(std::integral_constant<int, 8>{}, std::integral_constant<int, 10>{});
  if (bs.n_radial == 8 && bs.n_ang == 20) return f(std::integral_constant<int, 8>{}, std::integral_constant<int, 20>{});
  if (bs.n_radial == 8 && bs.n_ang == 4) return f(std::integral_constant<int, 8>{}, std::integral_constant<int, 4>{});
  return f(std::integral_constant<int, 0>{}, std::integral_constant<int, 0>{});
}

}  // namespace

// (A [n_centres * T, N * n_ang], slot [P], cache): A sums B_n(r) Y_k(u) / Nbar over the pairs of each
// slot s = i * T + types[j]; i < n_centres.  With ``cache`` the per-pair basis is kept ([P, 2N + 4 n_ang
// + 4]) for the force pass, else an empty [0, .] tensor (the force pass recomputes it).
std::vector<torch::Tensor> moments(const torch::Tensor& rij, const torch::Tensor& i, const torch::Tensor& j,
                                   const torch::Tensor& types, int64_t n_centres, int64_t n_types, int64_t n_radial,
                                   const torch::Tensor& exps, const torch::Tensor& coef, double cutoff, double floor,
                                   double avg_neighbors, bool cache, int64_t min_pairs) {
  check_pairs(rij, i, "i");
  check_pairs(rij, j, "j");
  TORCH_CHECK(types.dtype() == torch::kInt64 && types.is_contiguous() && types.device().is_cpu() && types.dim() == 1,
              "types must be a contiguous int64 CPU [n] tensor");
  const Basis bs = make_basis(n_radial, exps, coef, cutoff, floor, avg_neighbors);
  const int64_t P = rij.size(0), nt = types.size(0);
  auto slot = torch::empty({P}, i.options());
  {
    const int64_t *pi = i.data_ptr<int64_t>(), *pj = j.data_ptr<int64_t>(), *ty = types.data_ptr<int64_t>();
    int64_t* ps = slot.data_ptr<int64_t>();
    for (int64_t p = 0; p < P; ++p) {
      TORCH_CHECK(pi[p] >= 0 && pi[p] < n_centres && pj[p] >= 0 && pj[p] < nt, "pair ", p, " indexes out of range");
      const int64_t t = ty[pj[p]];
      TORCH_CHECK(t >= 0 && t < n_types, "atom ", pj[p], " has type ", t, ", not in 0..", n_types - 1);
      ps[p] = pi[p] * n_types + t;
    }
  }
  auto a = torch::zeros({n_centres * n_types, static_cast<int64_t>(bs.n_radial) * bs.n_ang}, rij.options());
  const auto bounds = centre_aligned_bounds(i.data_ptr<int64_t>(), P, at::get_num_threads(), min_pairs);
  auto store = torch::empty({cache ? P : 0, cache_width(bs.n_radial, bs.n_ang)}, rij.options());
  AT_DISPATCH_FLOATING_TYPES(rij.scalar_type(), "ssehpc_moments", [&] {
    dispatch_shape(bs, [&](auto n, auto na) {
      constexpr int kN = decltype(n)::value, kNA = decltype(na)::value;
      scalar_t *px = rij.data_ptr<scalar_t>(), *pa = a.data_ptr<scalar_t>();
      if (cache) {
        moments_impl<scalar_t, kN, kNA, true>(bs, px, slot.data_ptr<int64_t>(), pa, store.data_ptr<scalar_t>(), bounds);
      } else {
        moments_impl<scalar_t, kN, kNA, false>(bs, px, slot.data_ptr<int64_t>(), pa, nullptr, bounds);
      }
    });
  });
  return {a, slot, store};
}

// g [P, M, 3] = dE/dr_ij for slot gradients G [n_slots, N * M * n_ang] (M members, or 1: the mean).
torch::Tensor pair_gradient(const torch::Tensor& grad_slots, const torch::Tensor& rij, const torch::Tensor& slot,
                            const torch::Tensor& cache, int64_t n_radial, const torch::Tensor& exps,
                            const torch::Tensor& coef, double cutoff, double floor, double avg_neighbors,
                            int64_t min_pairs) {
  check_pairs(rij, slot, "slot");
  const Basis bs = make_basis(n_radial, exps, coef, cutoff, floor, avg_neighbors);
  TORCH_CHECK(grad_slots.device().is_cpu() && grad_slots.dim() == 2 && grad_slots.is_contiguous() &&
                  grad_slots.scalar_type() == rij.scalar_type(),
              "grad_slots must be a contiguous CPU [n_slots, N*M*n_ang] tensor of rij's dtype");
  const int64_t P = rij.size(0), w = static_cast<int64_t>(bs.n_radial) * bs.n_ang;
  TORCH_CHECK(grad_slots.size(1) % w == 0, "grad_slots width is not a multiple of N * n_ang");
  const int64_t M = grad_slots.size(1) / w, n_slots = grad_slots.size(0);
  TORCH_CHECK(M >= 1 && M <= kMaxMembers, "1..", kMaxMembers, " members");
  const int64_t* ps = slot.data_ptr<int64_t>();
  for (int64_t p = 0; p < P; ++p) TORCH_CHECK(ps[p] >= 0 && ps[p] < n_slots, "slot of pair ", p, " out of range");
  const bool cached = cache.numel() > 0;
  TORCH_CHECK(!cached || (cache.device().is_cpu() && cache.dim() == 2 && cache.size(0) == P && cache.size(1) == cache_width(bs.n_radial, bs.n_ang) &&
                          cache.is_contiguous() && cache.scalar_type() == rij.scalar_type()),
              "cache must be the moment pass's [P, 2N + 4 n_ang + 4] basis of these pairs");
  auto g = torch::empty({P, M, 3}, rij.options());
  AT_DISPATCH_FLOATING_TYPES(rij.scalar_type(), "ssehpc_pair_gradient", [&] {
    dispatch_shape(bs, [&](auto n, auto na) {
      constexpr int kN = decltype(n)::value, kNA = decltype(na)::value;
      const scalar_t* pG = grad_slots.data_ptr<scalar_t>();
      scalar_t* pg = g.data_ptr<scalar_t>();
      const scalar_t* px = rij.data_ptr<scalar_t>();
      const scalar_t* pc = cached ? cache.data_ptr<scalar_t>() : nullptr;
      if (M == 1 && kNA) {  // the MD force (member mean): fully unrolled
        gradient_impl<scalar_t, kN, kNA, 1>(bs, px, ps, pG, M, P, pg, pc, min_pairs);
      } else if (M == 4 && kNA) {  // member forces of the shipped 4-member committee
        gradient_impl<scalar_t, kN, kNA, 4>(bs, px, ps, pG, M, P, pg, pc, min_pairs);
      } else {
        gradient_impl<scalar_t, kN, kNA, 0>(bs, px, ps, pG, M, P, pg, pc, min_pairs);
      }
    });
  });
  return g;
}

// (i, j, rij) of the listed pairs closer than the cutoff: rij = x_j - x_i in x's precision, then
// cast to out_dtype (small differences of large coordinates); the pair order is kept.
std::vector<torch::Tensor> cutoff_pairs(const torch::Tensor& x, const torch::Tensor& i, const torch::Tensor& j,
                                        double cutoff, torch::ScalarType out_dtype) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.size(1) == 3 && x.is_contiguous(),
              "positions must be a contiguous CPU [n, 3] tensor");
  TORCH_CHECK(i.dtype() == torch::kInt64 && j.dtype() == torch::kInt64 && i.is_contiguous() && j.is_contiguous() &&
                  i.device().is_cpu() && j.device().is_cpu() && i.dim() == 1 && j.dim() == 1 && i.size(0) == j.size(0),
              "i and j must be contiguous int64 CPU [P] tensors of one length");
  const int64_t L = i.size(0), n = x.size(0);
  auto keep = torch::empty({L}, i.options());
  auto rij_full = torch::empty({L, 3}, x.options());
  int64_t P = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ssehpc_cutoff_pairs", [&] {
    const scalar_t* px = x.data_ptr<scalar_t>();
    const int64_t *pi = i.data_ptr<int64_t>(), *pj = j.data_ptr<int64_t>();
    int64_t* pk = keep.data_ptr<int64_t>();
    scalar_t* pr = rij_full.data_ptr<scalar_t>();
    const scalar_t rc2 = static_cast<scalar_t>(cutoff * cutoff);
    for (int64_t p = 0; p < L; ++p) {
      const int64_t a = pi[p], b = pj[p];
      TORCH_CHECK(a >= 0 && a < n && b >= 0 && b < n, "pair ", p, " indexes out of range");
      const scalar_t d0 = px[3 * b] - px[3 * a], d1 = px[3 * b + 1] - px[3 * a + 1], d2 = px[3 * b + 2] - px[3 * a + 2];
      if (d0 * d0 + d1 * d1 + d2 * d2 < rc2) {
        pk[P] = p;
        pr[3 * P] = d0; pr[3 * P + 1] = d1; pr[3 * P + 2] = d2;
        ++P;
      }
    }
  });
  auto kept = keep.narrow(0, 0, P);
  return {i.index_select(0, kept), j.index_select(0, kept), rij_full.narrow(0, 0, P).to(out_dtype).contiguous()};
}

// (forces [n_rows, M, 3], g [P, M, 3]): F_i += g_ij, F_j -= g_ij (serial scatter after the
// parallel pair pass).
std::vector<torch::Tensor> pair_forces(const torch::Tensor& grad_slots, const torch::Tensor& rij,
                                       const torch::Tensor& slot, const torch::Tensor& cache, const torch::Tensor& i,
                                       const torch::Tensor& j, int64_t n_rows, int64_t n_radial,
                                       const torch::Tensor& exps, const torch::Tensor& coef, double cutoff,
                                       double floor, double avg_neighbors, int64_t min_pairs) {
  check_pairs(rij, i, "i");
  check_pairs(rij, j, "j");
  auto g = pair_gradient(grad_slots, rij, slot, cache, n_radial, exps, coef, cutoff, floor, avg_neighbors, min_pairs);
  const int64_t P = g.size(0), M = g.size(1);
  auto f = torch::zeros({n_rows, M, 3}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "ssehpc_pair_forces", [&] {
    const scalar_t* pg = g.data_ptr<scalar_t>();
    scalar_t* pf = f.data_ptr<scalar_t>();
    const int64_t *pi = i.data_ptr<int64_t>(), *pj = j.data_ptr<int64_t>();
    const int64_t w = M * 3;
    for (int64_t p = 0; p < P; ++p) {
      TORCH_CHECK(pi[p] >= 0 && pi[p] < n_rows && pj[p] >= 0 && pj[p] < n_rows, "pair ", p, " row out of range");
      const scalar_t* gp = pg + p * w;
      scalar_t* fi = pf + pi[p] * w;
      scalar_t* fj = pf + pj[p] * w;
      for (int64_t q = 0; q < w; ++q) { fi[q] += gp[q]; fj[q] -= gp[q]; }
    }
  });
  return {f, g};
}
