#include <cstdio>
#include "lowbit/core/version.h"
int main() { std::printf("lowbit %s\n", lowbit::version().c_str()); }
