"""A child writes, fsyncs and syncs the directory while its parent reads another file on the
same descriptor number (3); pipes order the steps: the child opens, the parent reads, the child
writes. The parent acknowledges after the child is done. Correct: accepted."""
import os, sys
d = sys.argv[1]
big = os.open(sys.executable, os.O_RDONLY)  # descriptor 3 in the parent
(opened_r, opened_w), (go_r, go_w) = os.pipe(), os.pipe()
if os.fork() == 0:
    os.close(big)
    fd = os.open(os.path.join(d, "out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # 3
    os.write(opened_w, b"1"); os.read(go_r, 1)
    os.write(fd, b"hello\n"); os.fsync(fd); os.close(fd)
    dfd = os.open(d, os.O_RDONLY); os.fsync(dfd); os.close(dfd); os._exit(0)
os.read(opened_r, 1)
while os.read(big, 500): pass
os.write(go_w, b"1"); os.wait(); print("saved", flush=True)
