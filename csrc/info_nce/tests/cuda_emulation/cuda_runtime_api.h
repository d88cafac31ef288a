// See cuda_runtime.h in this directory: the host emulation used by the C++ tests.
#pragma once
#include "cuda_runtime.h"
