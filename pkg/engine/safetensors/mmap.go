package safetensors

import (
	"fmt"
	"os"
	"syscall"
)

// Mapped is a safetensors file mapped into memory read-only: opening it
// costs no read of the data, and the pages a converter touches are read in
// by the kernel (from the page cache when warm) on as many cores as touch
// them. Its tensors' Data is valid until Close.
type Mapped struct {
	*File
	data []byte
}

// OpenMapped maps and parses the file at path; where mapping is not
// possible (an empty file, a file system without mmap) it falls back to
// reading the file.
func OpenMapped(path string) (*Mapped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	size := st.Size()
	if size <= 0 || int64(int(size)) != size {
		pf, err := Open(path)
		if err != nil {
			return nil, err
		}
		return &Mapped{File: pf}, nil
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		pf, err := Open(path)
		if err != nil {
			return nil, err
		}
		return &Mapped{File: pf}, nil
	}
	pf, err := Parse(data)
	if err != nil {
		syscall.Munmap(data)
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &Mapped{File: pf, data: data}, nil
}

// Close unmaps the file; its tensors must not be used after.
func (m *Mapped) Close() error {
	if m.data == nil {
		return nil
	}
	err := syscall.Munmap(m.data)
	m.data = nil
	return err
}
