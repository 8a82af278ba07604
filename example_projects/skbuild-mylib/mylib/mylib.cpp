#include "mylib.h"

namespace mylib {

std::string greeting(const std::string &name)
{
    return "Hello, " + name + ", from libmylib!";
}

}  // namespace mylib
