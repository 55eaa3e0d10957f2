// Replaces global operator new/delete for media_tests, counting the calls of threads that
// asked for it (the packet-path no-allocation tests). Kept in its own translation unit so
// the compiler sees no new/free pairing to warn about.
#include "allocation_counter.hpp"

#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
thread_local bool tCounting = false;
thread_local long tAllocations = 0;
}  // namespace

// Every replaceable form, so that no pointer from the sanitizer's own operator new ever
// reaches a free() here (ASan reports that as an alloc-dealloc mismatch).
namespace {
void* allocate(std::size_t size, std::size_t alignment) noexcept {
  if (tCounting) ++tAllocations;
  if (size == 0) size = 1;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
  size = (size + alignment - 1) / alignment * alignment;  // aligned_alloc wants a multiple
  return std::aligned_alloc(alignment, size);
}
void* allocateOrThrow(std::size_t size, std::size_t alignment) {
  if (void* p = allocate(size, alignment)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t size) { return allocateOrThrow(size, 0); }
void* operator new[](std::size_t size) { return allocateOrThrow(size, 0); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, 0); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, 0); }
void* operator new(std::size_t size, std::align_val_t a) {
  return allocateOrThrow(size, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t size, std::align_val_t a) {
  return allocateOrThrow(size, static_cast<std::size_t>(a));
}
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace medius::media::test {

AllocationCounter::AllocationCounter() {
  tAllocations = 0;
  tCounting = true;
}
AllocationCounter::~AllocationCounter() { tCounting = false; }
long AllocationCounter::count() const { return tAllocations; }

}  // namespace medius::media::test
