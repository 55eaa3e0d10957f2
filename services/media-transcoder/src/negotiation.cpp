// SDP negotiation: see medius/media/negotiation.hpp (issue 6; filled in by its slice).
#include "medius/media/media_plan.hpp"
