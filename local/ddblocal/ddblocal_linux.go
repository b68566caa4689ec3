package ddblocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// nsJavaAddr is where the proxy reaches java inside its namespace.
var nsJavaAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(nsJavaPort))

// launch runs java in a new network namespace and serves it on spec.addr
// through a loopback-only proxy. If no namespace can be made it falls back
// to running java on the host, where it listens on every interface.
func (s *Server) launch(spec *launchSpec) error {
	// Bind the host side first so a busy port fails before java starts.
	ln, err := net.ListenTCP("tcp", spec.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", spec.addr, err)
	}

	reason, err := s.launchIsolated(spec, ln)
	if err != nil {
		ln.Close()
		return err
	}
	if reason == nil {
		return nil
	}

	// Reuse the port the host listener got, so "127.0.0.1:0" still yields
	// a port known to be free a moment ago.
	spec.addr = ln.Addr().(*net.TCPAddr)
	ln.Close()
	s.out.warnf("WARNING: could not run DynamoDB Local in its own network namespace (%v); "+
		"running it directly instead, so it is listening on EVERY network interface on port %d, not only loopback. "+
		"Run as root (or with CAP_SYS_ADMIN) to keep it on loopback.", reason, spec.addr.Port)
	return s.launchDirect(spec)
}

// launchIsolated tries a plain network namespace (needs CAP_SYS_ADMIN) and
// then one inside a new user namespace (unprivileged). It returns a non-nil
// reason when isolation is unavailable and the caller should fall back, or
// an error when java could not be started at all.
func (s *Server) launchIsolated(spec *launchSpec, ln *net.TCPListener) (reason, err error) {
	uid, gid := os.Getuid(), os.Getgid()
	attempts := []struct {
		name string
		attr *syscall.SysProcAttr
	}{
		{"new network namespace", &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNET,
			Pdeathsig:  syscall.SIGKILL,
		}},
		{"new user+network namespace", &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
			Pdeathsig:   syscall.SIGKILL,
		}},
	}
	var reasons []error
	for i, a := range attempts {
		p, err := startJava(spec.command(nsJavaPort, s.out), a.attr)
		if err != nil {
			if i == 0 && !errors.Is(err, os.ErrPermission) {
				return nil, fmt.Errorf("run java in a %s: %w", a.name, err)
			}
			reasons = append(reasons, fmt.Errorf("%s: %w", a.name, err))
			continue
		}
		ns, err := enterableNetns(p.cmd.Process.Pid)
		if err != nil {
			// Started, but we cannot reach into the namespace (typically an
			// unprivileged user namespace, where setns needs CAP_SYS_ADMIN
			// in our own namespace too), so java would be unreachable.
			p.stop(0)
			reasons = append(reasons, fmt.Errorf("%s: %w", a.name, err))
			continue
		}
		s.proc = p
		s.netns = ns
		s.Isolated = true
		s.proxy = newProxy(ln, func(ctx context.Context) (net.Conn, error) {
			return dialInNetns(ctx, ns, nsJavaAddr)
		}, s.out.warnf)
		s.Endpoint = "http://" + ln.Addr().String()
		return nil, nil
	}
	return joinReasons(reasons), nil
}

// joinReasons folds the per-attempt failures into one line for the warning.
func joinReasons(reasons []error) error {
	msgs := make([]string, len(reasons))
	for i, r := range reasons {
		msgs[i] = r.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// enterableNetns opens java's network namespace and brings its loopback
// interface up (a new namespace starts with lo down), which also proves we
// are allowed to setns into it.
func enterableNetns(pid int) (*os.File, error) {
	ns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open java's network namespace: %w", err)
	}
	if err := inNetns(ns, bringLoopbackUp); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

func bringLoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for interface ioctl: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("ifreq for lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// dialInNetns connects to addr from inside the namespace ns. A socket
// belongs to the namespace it was created in, so only the socket creation
// must happen on a thread that has joined ns; the connection is then used
// from any thread.
func dialInNetns(ctx context.Context, ns *os.File, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNetns(ns, func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		conn = c
		return err
	})
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("dial %s in java's network namespace: %w", addr, err)
	}
	return conn, nil
}

// inNetns runs fn on a dedicated OS thread that has joined the network
// namespace ns, then moves the thread back. Namespaces are per thread, so
// the goroutine stays locked to it throughout; if moving back fails the
// thread is left locked and dies with the goroutine rather than being
// reused by the runtime in the wrong namespace.
func inNetns(ns *os.File, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread() // setns failed, the thread did not move
			errc <- fmt.Errorf("enter java's network namespace: %w", err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("return to our network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// directProcAttr kills java if our process dies (see startJava).
func directProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
