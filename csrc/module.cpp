// The Python module igrsr._C.  Loading it runs the TORCH_LIBRARY registrations of the ops;
// the module itself only says what was compiled in.
#include <pybind11/pybind11.h>

#ifndef IGRSR_WITH_CUDA
#define IGRSR_WITH_CUDA 0
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "igrsr compiled ops: igrsr::info_nce_forward / info_nce_backward (CPU, and CUDA when built with it)";
  module.attr("built_with_cuda") = pybind11::bool_(IGRSR_WITH_CUDA != 0);
}
