// Tests of medius/media/pipeline.hpp (issue 6).
#include <gtest/gtest.h>
