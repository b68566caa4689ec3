//go:build !linux

package ddblocal

import "syscall"

// launch runs java directly: network namespaces exist only on Linux, so on
// other platforms DynamoDB Local listens on every interface.
func (s *Server) launch(spec *launchSpec) error {
	if err := s.launchDirect(spec); err != nil {
		return err
	}
	s.out.warnf("WARNING: network isolation is only available on Linux; DynamoDB Local is listening on EVERY network interface on port %d, not only loopback.", spec.addr.Port)
	return nil
}

// directProcAttr has nothing to add: Pdeathsig is Linux-only, so elsewhere
// java can outlive a crashed parent and Close must be called.
func directProcAttr() *syscall.SysProcAttr { return nil }
