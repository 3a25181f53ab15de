/* faultshim.c - an LD_PRELOAD library that injects faults into the writing of temporary
 * files, for the crash tests of fz-train's checkpoints.
 *
 *   cc -shared -fPIC -o faultshim.so tests/faultshim.c -ldl
 *   FZ_SHIM_KILL_AT=fsync:2 LD_PRELOAD=./faultshim.so fz-train ...
 *
 * Only files whose name contains ".tmp." are watched (fz_st_write writes "model.tmp.<pid>"
 * and renames it); every other file works as usual. Only calls through the dynamic symbols
 * open, openat, creat, write, fsync, fdatasync, close and rename are seen: glibc's stdio
 * (fopen, fwrite, fflush) reaches the kernel through internal calls that no preloaded
 * library can replace, so streams are tested with /dev/full instead. The settings, from
 * the environment:
 *
 *   FZ_SHIM_KILL_AT=POINT:N[:SIG][,...]
 *                              raise SIGKILL (or SIG: INT, TERM, HUP or a number) at the
 *                              Nth (from 1) occurrence of POINT, one of:
 *       open      right after a watched file was opened
 *       write     right after a write() to a watched file (a partly written file)
 *       fsync     right before fsync() (or fdatasync()) of a watched file
 *       fsync+    right after it returned
 *       close+    right after close() of a watched file
 *       rename    right before rename() of a watched file
 *       rename+   right after it returned (before the directory is synced)
 *   FZ_SHIM_ENOSPC_AFTER=N     writes to a watched file beyond its first N bytes fail with
 *                              ENOSPC (a write crossing the limit is short, as on a disk
 *                              that fills up)
 *   FZ_SHIM_FSYNC_ERRNO=E      fsync() of a watched file fails with errno E: ENOSPC, EDQUOT
 *                              or EIO (space that ran out only when the data was flushed)
 *   FZ_SHIM_LOG=PATH           append one line per watched operation to PATH
 *
 * The library uses no allocation and no stdio, so that it can sit below the allocator and
 * stdio of the program (and beside AddressSanitizer, which must come first in LD_PRELOAD).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FD 4096

static unsigned char watched[MAX_FD];   /* fd -> 1 when it is a watched file */
static long long written[MAX_FD];       /* bytes written to that fd */
static long counts[8];                  /* occurrences of each point so far */

enum { P_OPEN, P_WRITE, P_FSYNC, P_FSYNC_AFTER, P_CLOSE_AFTER, P_RENAME, P_RENAME_AFTER, P_N };
static const char *const point_names[P_N] = {"open",   "write",   "fsync",  "fsync+",
                                             "close+", "rename",  "rename+"};

static int is_tmp(const char *path) { return path && strstr(path, ".tmp.") != NULL; }

static void *next(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) abort();
    return f;
}

/* A number, or -1 when the variable is unset or not a number. */
static long long env_num(const char *name)
{
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long long v = strtoll(s, &end, 10);
    return *end ? -1 : v;
}

static void log_line(const char *what, const char *detail)
{
    const char *path = getenv("FZ_SHIM_LOG");
    if (!path) return;
    int (*real_open)(const char *, int, ...) = next("open");
    ssize_t (*real_write)(int, const void *, size_t) = next("write");
    int fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char line[512];
    size_t n = 0, a = strlen(what), b = detail ? strlen(detail) : 0;
    if (a > 100) a = 100;
    if (b > 400) b = 400;
    memcpy(line, what, a);
    n = a;
    if (b) {
        line[n++] = ' ';
        memcpy(line + n, detail, b);
        n += b;
    }
    line[n++] = '\n';
    if (real_write(fd, line, n) < 0) { /* nothing to do: the log is a debugging aid */ }
    close(fd);
}

/* The signal named by s (KILL, INT, TERM, HUP or a number), 0 if unknown. */
static int signal_of(const char *s, size_t len)
{
    static const struct { const char *name; int sig; } names[] = {
        {"KILL", SIGKILL}, {"INT", SIGINT}, {"TERM", SIGTERM}, {"HUP", SIGHUP}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i].name) == len && strncmp(s, names[i].name, len) == 0)
            return names[i].sig;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > 1000) return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Count an occurrence of point p and raise the signal that FZ_SHIM_KILL_AT asks for at it:
 * a comma-separated list of POINT:N[:SIG], SIG being KILL (the default), INT, TERM, HUP or
 * a number. */
static void point(int p, const char *detail)
{
    counts[p]++;
    log_line(point_names[p], detail);
    const char *at = getenv("FZ_SHIM_KILL_AT");
    while (at && *at) {
        const char *end = strchr(at, ',');
        if (!end) end = at + strlen(at);
        const char *c1 = memchr(at, ':', (size_t)(end - at));
        if (c1) {
            const char *c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
            size_t len = (size_t)(c1 - at);
            long n = strtol(c1 + 1, NULL, 10);
            int sig = c2 ? signal_of(c2 + 1, (size_t)(end - c2 - 1)) : SIGKILL;
            if (sig && n == counts[p] && strlen(point_names[p]) == len &&
                strncmp(at, point_names[p], len) == 0) {
                log_line(sig == SIGKILL ? "kill" : "signal", point_names[p]);
                kill(getpid(), sig);
            }
        }
        at = *end ? end + 1 : end;
    }
}

static int watch(int fd, const char *path)
{
    if (fd >= 0 && fd < MAX_FD && is_tmp(path)) {
        watched[fd] = 1;
        written[fd] = 0;
        point(P_OPEN, path);
    }
    return fd;
}

static int is_watched(int fd) { return fd >= 0 && fd < MAX_FD && watched[fd]; }

/* ---- open ---- */

#define OPEN_LIKE(name)                                                                    \
    int name(const char *path, int flags, ...)                                             \
    {                                                                                      \
        static int (*real)(const char *, int, ...);                                        \
        if (!real) real = next(#name);                                                     \
        mode_t mode = 0;                                                                   \
        if (flags & (O_CREAT | O_TMPFILE)) {                                               \
            va_list ap;                                                                    \
            va_start(ap, flags);                                                           \
            mode = (mode_t)va_arg(ap, int);                                                \
            va_end(ap);                                                                    \
        }                                                                                  \
        return watch(real(path, flags, mode), path);                                       \
    }

#define OPENAT_LIKE(name)                                                                  \
    int name(int dirfd, const char *path, int flags, ...)                                  \
    {                                                                                      \
        static int (*real)(int, const char *, int, ...);                                   \
        if (!real) real = next(#name);                                                     \
        mode_t mode = 0;                                                                   \
        if (flags & (O_CREAT | O_TMPFILE)) {                                               \
            va_list ap;                                                                    \
            va_start(ap, flags);                                                           \
            mode = (mode_t)va_arg(ap, int);                                                \
            va_end(ap);                                                                    \
        }                                                                                  \
        return watch(real(dirfd, path, flags, mode), path);                                \
    }

OPEN_LIKE(open)
OPEN_LIKE(open64)
OPENAT_LIKE(openat)
OPENAT_LIKE(openat64)

int creat(const char *path, mode_t mode)
{
    static int (*real)(const char *, mode_t);
    if (!real) real = next("creat");
    return watch(real(path, mode), path);
}

/* ---- write, fsync, close ---- */

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = next("write");
    if (!is_watched(fd)) return real(fd, buf, n);
    long long limit = env_num("FZ_SHIM_ENOSPC_AFTER");
    if (limit >= 0 && written[fd] + (long long)n > limit) {
        long long room = limit - written[fd];
        if (room <= 0) {
            log_line("enospc", "write");
            errno = ENOSPC;
            return -1;
        }
        n = (size_t)room; /* a short write, then ENOSPC on the next one */
    }
    ssize_t k = real(fd, buf, n);
    if (k > 0) written[fd] += k;
    point(P_WRITE, NULL);
    return k;
}

static int fsync_errno(void)
{
    const char *e = getenv("FZ_SHIM_FSYNC_ERRNO");
    if (!e) return 0;
    if (strcmp(e, "ENOSPC") == 0) return ENOSPC;
    if (strcmp(e, "EIO") == 0) return EIO;
    if (strcmp(e, "EDQUOT") == 0) return EDQUOT;
    return 0;
}

#define SYNC_LIKE(name)                                                                    \
    int name(int fd)                                                                       \
    {                                                                                      \
        static int (*real)(int);                                                           \
        if (!real) real = next(#name);                                                     \
        if (!is_watched(fd)) return real(fd);                                              \
        point(P_FSYNC, #name);                                                             \
        int e = fsync_errno();                                                             \
        if (e) {                                                                           \
            log_line("fail", #name);                                                       \
            errno = e;                                                                     \
            return -1;                                                                     \
        }                                                                                  \
        int rc = real(fd);                                                                 \
        int saved = errno;                                                                 \
        point(P_FSYNC_AFTER, #name);                                                       \
        errno = saved;                                                                     \
        return rc;                                                                         \
    }

SYNC_LIKE(fsync)
SYNC_LIKE(fdatasync)

int close(int fd)
{
    static int (*real)(int);
    if (!real) real = next("close");
    int w = is_watched(fd);
    if (w) watched[fd] = 0;
    int rc = real(fd);
    int saved = errno;
    if (w) point(P_CLOSE_AFTER, NULL);
    errno = saved;
    return rc;
}

/* ---- rename ---- */

int rename(const char *from, const char *to)
{
    static int (*real)(const char *, const char *);
    if (!real) real = next("rename");
    if (!is_tmp(from)) return real(from, to);
    point(P_RENAME, from);
    int rc = real(from, to);
    int saved = errno;
    point(P_RENAME_AFTER, to);
    errno = saved;
    return rc;
}

int renameat(int fromfd, const char *from, int tofd, const char *to)
{
    static int (*real)(int, const char *, int, const char *);
    if (!real) real = next("renameat");
    if (!is_tmp(from)) return real(fromfd, from, tofd, to);
    point(P_RENAME, from);
    int rc = real(fromfd, from, tofd, to);
    int saved = errno;
    point(P_RENAME_AFTER, to);
    errno = saved;
    return rc;
}
