package multicast

import "errors"

var (
	// ErrPoolExhausted is returned (wrapped in a message naming the pool) when
	// every address of a pool is leased, reserved or in use.
	ErrPoolExhausted = errors.New("multicast: pool exhausted")

	// ErrUnknownPool is returned when a request names a pool the allocator
	// does not have.
	ErrUnknownPool = errors.New("multicast: unknown pool")

	// ErrNotLeased is returned by Renew and Release for a group that holds no
	// lease.
	ErrNotLeased = errors.New("multicast: group is not leased")

	// ErrTaken is returned by Claim for a group that is leased, reserved
	// or in use.
	ErrTaken = errors.New("multicast: group is taken")

	// ErrNotInPool is returned by Claim for a group outside the pool (or
	// excluded from it).
	ErrNotInPool = errors.New("multicast: group is not in the pool")

	// ErrClosed is returned after the allocator has been closed.
	ErrClosed = errors.New("multicast: allocator closed")
)
