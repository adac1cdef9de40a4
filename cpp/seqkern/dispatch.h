// dispatch.h: choosing the instruction-set level at run time.
#pragma once

#include <string>
#include <vector>

#include "seqkern/kernels.h"

namespace seqkern {

const char* isa_name(Isa isa);
// Levels compiled into this build, lowest first.
std::vector<Isa> compiled_isas();
// Compiled levels that this CPU and OS can run, lowest first.
std::vector<Isa> available_isas();
Isa current_isa();
// Throws std::invalid_argument naming the available levels when `name` is unknown or unavailable.
void set_isa(const std::string& name);
// This thread's level from now on ("": back to the process-wide one); use_isa's mechanism.
void set_thread_isa(const std::string& name);
const KernelTable& table();

// OpenMP thread count of the calling thread (1 without OpenMP).
int get_num_threads();
void set_num_threads(int n);
bool have_openmp();

}  // namespace seqkern
