"""A child writes, fsyncs and syncs the directory while its parent reads another file on the
same descriptor number; the parent acknowledges after the child is done. Correct: accepted."""
import os, sys
d = sys.argv[1]
big = os.open(sys.executable, os.O_RDONLY)  # descriptor 3 in the parent
pid = os.fork()
if pid == 0:
    os.close(big)
    fd = os.open(os.path.join(d, "out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"hello\n"); os.fsync(fd); os.close(fd)
    dfd = os.open(d, os.O_RDONLY); os.fsync(dfd); os.close(dfd)
    os._exit(0)
while os.read(big, 500): pass
os.waitpid(pid, 0); print("saved", flush=True)
