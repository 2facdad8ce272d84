// Go's os/exec through its ordinary API (CommandContext for deadlines), with
// the same workloads and report as Benchmarks/reference/ref.c.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type report struct {
	Jobs      int                `json:"jobs"`
	Delivered int                `json:"delivered"`
	Errors    int                `json:"errors"`
	Wall      float64            `json:"wall_s"`
	Overshoot map[string]float64 `json:"overshoot_ms,omitempty"`
	MBps      float64            `json:"mb_per_s,omitempty"`
}

func main() {
	var limit syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit)
	limit.Cur = limit.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit)
	mode := os.Args[1]
	r := report{}
	start := time.Now()
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		r.Errors++
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	switch mode {
	case "spawn", "bigheap":
		var n, inflight int
		if mode == "bigheap" {
			mib, _ := strconv.Atoi(os.Args[2])
			heap := make([]byte, mib<<20)
			for i := 0; i < len(heap); i += 4096 {
				heap[i] = 1
			}
			defer func() { _ = heap[0] }()
			n, _ = strconv.Atoi(os.Args[3])
			inflight = 1
			start = time.Now()
		} else {
			n, _ = strconv.Atoi(os.Args[2])
			inflight, _ = strconv.Atoi(os.Args[3])
		}
		gate := make(chan struct{}, inflight)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			gate <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-gate }()
				if err := exec.Command("/bin/true").Run(); err != nil {
					fail(err)
				}
			}()
		}
		wg.Wait()
		r.Jobs, r.Delivered = n, n
	case "deadline", "trickle":
		n, _ := strconv.Atoi(os.Args[2])
		deadline := 0.0
		if mode == "deadline" {
			deadline, _ = strconv.ParseFloat(os.Args[3], 64)
		}
		var wg sync.WaitGroup
		overs := make([]float64, 0, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if deadline == 0 {
					if err := exec.Command("/bin/sleep", "1").Run(); err != nil {
						fail(err)
					}
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(deadline*float64(time.Second)))
				defer cancel()
				cmd := exec.CommandContext(ctx, "/bin/sleep", "30")
				begin := time.Now()
				err := cmd.Run()
				if ctx.Err() != nil {
					mu.Lock()
					overs = append(overs, float64(time.Since(begin))/1e6-deadline*1000)
					mu.Unlock()
				} else if err != nil {
					fail(err)
				}
			}()
		}
		wg.Wait()
		r.Jobs, r.Delivered = n, n-r.Errors
		if len(overs) > 0 {
			sort.Float64s(overs)
			pick := func(p float64) float64 { return overs[int(float64(len(overs)-1)*p+0.5)] }
			r.Overshoot = map[string]float64{"p50": pick(0.5), "p99": pick(0.99), "max": overs[len(overs)-1]}
		}
	case "throughput":
		cmd := exec.Command("/usr/bin/head", "-c", os.Args[2], "/dev/zero")
		out, _ := cmd.StdoutPipe()
		cmd.Start()
		total, _ := io.Copy(io.Discard, out)
		cmd.Wait()
		r.Jobs, r.Delivered = 1, 1
		r.MBps = float64(total) / 1e6 / time.Since(start).Seconds()
	}
	r.Wall = time.Since(start).Seconds()
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, firstErr)
	}
	text, _ := json.Marshal(r)
	fmt.Println(string(text))
}
