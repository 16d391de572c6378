/* How long this machine takes to touch fresh anonymous memory, one 4 KiB
 * page at a time (BENCHMARKS.md, "Fresh memory at the start of a
 * snapshot"). On a VM whose host backs guest memory lazily, the first
 * touch of a page is far slower than a touch of memory already backed.
 *
 *   cc -O2 -o /tmp/first-touch bench/scripts/first-touch.c
 *   /tmp/first-touch 512          # MiB, base pages
 *   /tmp/first-touch 512 huge     # MiB, with MADV_HUGEPAGE
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MIB [huge]\n", argv[0]);
        return 2;
    }
    size_t mib = strtoul(argv[1], NULL, 10);
    size_t n = mib << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    if (argc > 2)
        madvise(p, n, MADV_HUGEPAGE);
    double t0 = now_ms(), worst = 0;
    for (size_t i = 0; i < n; i += 4096) {
        double a = now_ms();
        p[i] = 1;
        double d = now_ms() - a;
        if (d > worst)
            worst = d;
    }
    double total = now_ms() - t0;
    printf("%zu MiB: %.1f ms, %.2f us per 4 KiB page, worst single touch %.2f ms\n", mib, total,
           total * 1000 / (double)(n / 4096), worst);
    return 0;
}
