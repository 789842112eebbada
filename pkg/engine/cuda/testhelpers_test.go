package cuda

import "unsafe"

// pinnedFrom wraps Go memory as a pinned buffer so layout code can be tested
// without a GPU.
func pinnedFrom(v []int32) pinned { return pinned{p: unsafe.Pointer(&v[0]), size: 4 * len(v)} }
