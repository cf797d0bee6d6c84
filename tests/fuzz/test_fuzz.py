"""Property-based fuzzing of every pass (hypothesis).

Random convolutions in random small graphs (fuzz_models.conv_cases), put
through a pass drawn by hypothesis. The property, checked by
fuzz_models.check_rewrite after every pass:

- the input model is not modified;
- the result is a valid model (onnx checker with full_check, strict shape
  inference with type checks);
- graph inputs and outputs keep their names, shapes and dtypes;
- onnxruntime CPU gives the original's outputs within the case's tolerance
  (float32: atol 1e-5, rtol 1e-4; float16: atol 1e-3, rtol 1e-2; both plus
  the forward error bound of the graph, see fuzz_models);
- every convolution has exactly one record per pass, every skip a reason;
- a run that rewrites nothing returns the model byte for byte;
- running the same passes again changes nothing (byte-identical).

Example counts come from the hypothesis profile (tests/conftest.py): `ci`
(default, derandomized) runs CI_EXAMPLES per test, `--hypothesis-profile
thorough` 50 000 over the file. Every failure found becomes a named test in
test_fuzz_regressions.py.
"""

from __future__ import annotations

from hypothesis import given, strategies as st

from fuzz_models import Case, check_rewrite, conv_cases

LAYOUTS = st.sampled_from(["h", "w"])


@given(case=conv_cases(), passes=st.sampled_from([["to-2d"], ["to-1d"], ["to-3d"], ["3d-to-2d"]]), layout=LAYOUTS)
def test_fuzz_rank(case: Case, passes: list[str], layout: str) -> None:
    check_rewrite(case, passes, layout=layout)


@given(case=conv_cases())
def test_fuzz_causal(case: Case) -> None:
    check_rewrite(case, ["causal"])


@given(case=conv_cases(), expand=st.booleans(), finite=st.booleans())
def test_fuzz_dilated(case: Case, expand: bool, finite: bool) -> None:
    check_rewrite(case, ["dilated"], expand_dilations=expand, assume_finite=finite)


@given(case=conv_cases(), fuse=st.booleans(), force=st.booleans())
def test_fuzz_separable(case: Case, fuse: bool, force: bool) -> None:
    check_rewrite(case, ["separable"], fuse_separable=fuse, force=force)


@given(case=conv_cases(), passes=st.sampled_from([["channels-as-spatial"], ["spatial-as-channels"]]))
def test_fuzz_channels_spatial(case: Case, passes: list[str]) -> None:
    check_rewrite(case, passes)


@given(case=conv_cases(), passes=st.sampled_from([["all"], ["to-2d", "all"], ["to-1d", "all"]]),
       layout=LAYOUTS, fuse=st.booleans(), expand=st.booleans(), finite=st.booleans())
def test_fuzz_pipelines(case: Case, passes: list[str], layout: str, fuse: bool, expand: bool, finite: bool) -> None:
    check_rewrite(case, passes, layout=layout, fuse_separable=fuse, expand_dilations=expand, assume_finite=finite)
