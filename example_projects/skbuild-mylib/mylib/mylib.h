#pragma once

#include <string>

namespace mylib {

std::string greeting(const std::string &name);

}  // namespace mylib
