"""64 concurrent callers × 500 requests of 1..8 rows: every caller gets the
answer for its own rows (ids tracked), and the server's books count every
request and row once, however the batcher merged them. That it merges is
proven without timing: callers released together against a batcher that waits
(as long as a test may take) for a preferred batch size that only all of them
together reach, so every round is exactly one engine call."""

import threading
import time
import unittest

import grpc

import numpy as np

import selu_server as s

CALLERS = 64
REQUESTS_PER_CALLER = 500
MAX_ROWS = 8


class ConcurrentCallersTest(s.ServerTestCase):
    def test_concurrent_mixed_batches_are_correct_and_counted(self):
        server = self.start_server("--max-batch-size", "64", "--max-queue-delay-us", "500")
        x, _ = s.load_heldout()
        expected = s.bundled_reference()(x)
        # Several channels, as several client processes would have.
        stubs = [server.inference(server.new_channel()) for _ in range(4)]

        errors = []
        rows_sent = [0] * CALLERS
        checked = [0] * CALLERS
        rng = np.random.default_rng(1234)
        plans = [[(int(rng.integers(0, len(x) - MAX_ROWS)), int(rng.integers(1, MAX_ROWS + 1)))
                  for _ in range(REQUESTS_PER_CALLER)] for _ in range(CALLERS)]

        def caller(c):
            stub = stubs[c % len(stubs)]
            # Pipelined: a window of futures in flight per caller.
            window = []

            def check(i, future):
                start, n = plans[c][i]
                try:
                    resp = future.result(timeout=60)
                    if resp.id != "%d-%d" % (c, i):
                        raise AssertionError("caller %d request %d got id %r" % (c, i, resp.id))
                    got = s.response_output(resp, n, 10)
                    err = np.abs(got - expected[start:start + n]).max()
                    if err > s.TOLERANCE:
                        raise AssertionError("caller %d request %d rows %d..%d off by %g"
                                             % (c, i, start, start + n, err))
                    checked[c] += 1
                except Exception as e:  # collected; the main thread fails the test
                    errors.append(e)

            for i, (start, n) in enumerate(plans[c]):
                req = s.infer_request(x[start:start + n], request_id="%d-%d" % (c, i))
                window.append((i, stub.ModelInfer.future(req, timeout=60)))
                rows_sent[c] += n
                if len(window) >= 2:
                    check(*window.pop(0))
            for item in window:
                check(*item)

        threads = [threading.Thread(target=caller, args=(c,)) for c in range(CALLERS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=150)
        elapsed = time.monotonic() - t0
        self.assertFalse(any(t.is_alive() for t in threads), "callers still running")
        self.assertEqual(errors[:5], [])
        total_requests = CALLERS * REQUESTS_PER_CALLER
        self.assertEqual(sum(checked), total_requests)

        # A fresh server: its statistics count exactly this load.
        after = s.statistics(stubs[0])
        requests = after.inference_stats.success.count
        executions = after.execution_count
        rows = after.inference_count
        print("\n%d requests (%d rows) in %.1f s: %d engine calls, %.1f requests per call"
              % (total_requests, sum(rows_sent), elapsed, executions,
                 total_requests / max(executions, 1)))
        self.assertEqual(requests, total_requests)
        self.assertEqual(rows, sum(rows_sent))
        self.assertLessEqual(executions, total_requests)
        self.assertEqual(after.inference_stats.fail.count, 0)
        batched = sum(b.batch_size * b.compute_infer.count for b in after.batch_stats)
        self.assertEqual(batched, sum(rows_sent), "batch_stats rows disagree with inference_count")
        calls = sum(b.compute_infer.count for b in after.batch_stats)
        self.assertEqual(calls, executions, "batch_stats calls disagree with execution_count")

    def test_callers_released_together_are_merged_into_one_engine_call(self):
        callers, rows, rounds = 8, 4, 5
        preferred = callers * rows
        # Waits up to 10 s (a safety net, and the most --max-queue-delay-us
        # takes, so not scaled by s.SLOWDOWN) for company, dispatches at once
        # at 32 rows.
        server = self.start_server("--max-batch-size", "64", "--preferred-batch-size",
                                   str(preferred), "--max-queue-delay-us", "10000000",
                                   "--batch-execution", "workers")
        x, _ = s.load_heldout()
        expected = s.bundled_reference()(x)
        stubs = [server.inference(server.new_channel()) for _ in range(callers)]
        barrier = threading.Barrier(callers)
        errors = []

        def caller(c):
            for r in range(rounds):
                start = (r * callers + c) * rows
                barrier.wait(timeout=60)
                try:
                    resp = stubs[c].ModelInfer(s.infer_request(x[start:start + rows]),
                                               timeout=60)
                    got = s.response_output(resp, rows, 10)
                    if np.abs(got - expected[start:start + rows]).max() > s.TOLERANCE:
                        raise AssertionError("caller %d round %d: wrong rows" % (c, r))
                except (grpc.RpcError, AssertionError) as e:
                    errors.append(e)

        threads = [threading.Thread(target=caller, args=(c,)) for c in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.assertFalse(any(t.is_alive() for t in threads), "callers still running")
        self.assertEqual(errors[:3], [])
        after = s.statistics(stubs[0])
        self.assertEqual(after.inference_stats.success.count, callers * rounds)
        self.assertEqual(after.inference_count, preferred * rounds)
        # Every round: one engine call of all eight callers' rows.
        self.assertEqual(after.execution_count, rounds)
        self.assertEqual({b.batch_size: b.compute_infer.count for b in after.batch_stats},
                         {preferred: rounds})


if __name__ == "__main__":
    unittest.main()
