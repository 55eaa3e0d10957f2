// Tests of medius/media/negotiation.hpp (issue 6).
#include <gtest/gtest.h>
