# gdb-stacks.py: how big are a running Go program's goroutine stacks?
#
# A stream's goroutine keeps the stack it grew to for the stream's whole
# life (docs/ARCHITECTURE.md, "Request path"). While cmd/loadbench holds its
# 1,000 slow streams open, attach to the gateway and print, per goroutine
# start function, how many goroutines have which stack size and how much of
# it they use now:
#
#   gdb -batch -p "$(pgrep -f 'gatehouse serve')" -ex 'source cmd/loadbench/gdb-stacks.py'
#
# gdb stops the process while it reads (the streams see a gap). With
# GODEBUG=gcshrinkstackoff=1 in the gateway's environment the sizes are the
# largest each goroutine ever grew to. Needs a binary with DWARF (the
# default `go build`).
import collections

import gdb

allgs = gdb.parse_and_eval("'runtime.allgs'")
count = collections.Counter()
used = collections.defaultdict(list)
for i in range(int(allgs["len"])):
    g = allgs["array"][i]
    if int(g["atomicstatus"]["value"]) == 6:  # _Gdead
        continue
    lo, hi = int(g["stack"]["lo"]), int(g["stack"]["hi"])
    block = gdb.block_for_pc(int(g["startpc"]))
    fn = block.function.name if block and block.function else hex(int(g["startpc"]))
    count[(fn, hi - lo)] += 1
    used[fn].append(hi - int(g["sched"]["sp"]))
total = 0
for (fn, size), n in sorted(count.items(), key=lambda kv: -kv[1] * kv[0][1]):
    total += n * size
    u = used[fn]
    print("%6d x %6d B = %9d B  %s (in use now: avg %d B, max %d B)" % (n, size, n * size, fn, sum(u) // len(u), max(u)))
print("total %d B" % total)
