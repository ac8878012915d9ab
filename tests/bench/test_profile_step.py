"""bench/profile_step.py: kernel names sorted into classes, and a CPU profile of a real step."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import profile_step  # noqa: E402


@pytest.mark.parametrize("name,expected", [
    # Names as CUDA kernels of torch 2.x report them (cuBLAS, PyTorch's flash attention, ATen).
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas", "matmul"),
    ("nvjet_hsh_128x256_64x4_2x1_v_bz_coopA_NTN", "matmul"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, cutlass::bfloat16_t>>", "attention"),
    ("fmha_cutlassB_bf16_aligned_64x64_k64_sm80", "attention"),
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, float>", "normalisation"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl(at::TensorIteratorBase&)>", "elementwise"),
    ("void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, float, float>", "softmax/loss/reduction"),
    ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t<float, at::native::sum_functor>>>", "softmax/loss/reduction"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor<float, 4>>", "optimizer"),
    ("Memcpy HtoD (Pageable -> Device)", "copy/cast/index"),
    ("void at::native::index_elementwise_kernel<128, 4>", "copy/cast/index"),
    # From the H200 profile of 2026-11-28, where "lambda" inside the names read as LAMB.
    ("void at::native::vectorized_elementwise_kernel<8, at::native::bfloat16_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda(float)#1}, std::array<char*, 2ul> >", "copy/cast/index"),
    ("void at::native::vectorized_elementwise_kernel<8, at::native::GeluBackwardCUDAKernelImpl(at::TensorIteratorBase&, at::native::GeluType)::{lambda()#1}::operator()() const", "elementwise"),
    ("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}>", "copy/cast/index"),
    ("void at::native::reduce_kernel<128, 4, at::native::ReduceOp<c10::BFloat16, at::native::func_wrapper_t<c10::BFloat16, at::native::sum_functor<c10::BFloat16, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, unsigned int, c10::BFloat16, 4> >", "softmax/loss/reduction"),
    ("void at::native::(anonymous namespace)::GammaBetaBackwardCUDAKernelTemplate<float, float, 32u, 32u, 256u, false, true, false>", "normalisation"),
    ("void at::native::(anonymous namespace)::CatArrayBatchedCopy<at::native::(anonymous namespace)::OpaqueType<2u>, unsigned int, 4, 64, 64>", "copy/cast/index"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26_64x64x64_1x4x1_cga1x1x1_kernel0_0", "attention"),
    ("void at::native::unrolled_elementwise_kernel<at::native::CUDAFunctor_add<float>, std::array<char*, 3ul>, 4>", "elementwise"),
    ("some_kernel_nobody_knows", "other"),
])
def test_kernel_classes(name, expected):
    assert profile_step.kernel_class(name) == expected


def test_cpu_profile_of_a_real_step(tmp_path):
    out = tmp_path / "profile.json"
    profile_step.main(["--shape", "micro", "--batch", "2", "--seq", "16", "--steps", "2", "--warmup", "1",
                       "--top", "20", "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["step_ms"] > 0 and record["tokens_per_s"] == pytest.approx(2 * 16 / record["step_ms"] * 1e3)
    # The top 20, not 5: on a busy machine a micro step's elementwise operators can outrank its matmuls.
    assert len(record["top"]) == 20
    assert any(r["name"] in ("aten::mm", "aten::addmm", "aten::bmm") for r in record["top"])
    # Largest first. Only the order is asserted: a profiled step runs slower than the timed one.
    times = [r["ms"] for r in record["top"]]
    assert times == sorted(times, reverse=True) and times[-1] > 0
