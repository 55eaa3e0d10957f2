// MediaPipeline: see medius/media/pipeline.hpp (issue 6 data plane; filled in by its slice).
#include "medius/media/media_plan.hpp"
