// Counts global operator new calls made by the current thread while counting is on
// (allocation_counter.cpp replaces operator new for the media_tests binary).
#pragma once

namespace medius::media::test {

class AllocationCounter {
 public:
  AllocationCounter();   // starts counting on this thread
  ~AllocationCounter();  // stops
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;
  long count() const;
};

}  // namespace medius::media::test
