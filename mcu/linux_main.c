/* `make mcu-check` on aarch64 Linux (a Raspberry Pi proxy, under qemu-aarch64): the same
 * streaming run as main.c, the waveform read from a file of int32 counts (3 x n, planar). */
#include <stdio.h>
#include <stdlib.h>

#include "xiaonet.h"

#define PACKET 100

static xn_stream station;

static void on_pick(const xn_pick *pick, void *user)
{
    (void)user;
    printf("PICK %d %lld %lld %lld %lld\n", pick->phase == 'S', (long long)pick->peak, (long long)pick->start,
           (long long)pick->end, (long long)(pick->probability * 1e6f + 0.5f));
}

int main(int argc, char **argv)
{
    static float packet[PACKET];
    FILE *file;
    int32_t *wave;
    long total, n, i, j;
    int c;
    if (argc != 3 || !(file = fopen(argv[1], "rb"))) {
        fprintf(stderr, "usage: %s WAVE.bin SAMPLES_TO_USE\n", argv[0]);
        return 2;
    }
    fseek(file, 0, SEEK_END);
    total = ftell(file) / (long)(3 * sizeof(int32_t));
    fseek(file, 0, SEEK_SET);
    wave = malloc((size_t)total * 3 * sizeof(int32_t));  /* the harness allocates; the runtime does not */
    if (!wave || fread(wave, sizeof(int32_t), (size_t)total * 3, file) != (size_t)total * 3) return 2;
    fclose(file);
    n = atol(argv[2]);
    if (n > total) n = total;
    xn_stream_init(&station, on_pick, NULL);
    for (i = 0; i < n; i += PACKET) {
        const long m = n - i < PACKET ? n - i : PACKET;
        for (c = 0; c < XN_CHANNELS; c++) {
            int32_t done = 0;
            for (j = 0; j < m; j++) packet[j] = (float)wave[(long)c * total + i + j];
            while (done < m) done += xn_push(&station, c, packet + done, (int32_t)(m - done));
        }
    }
    xn_finish(&station);
    printf("WINDOWS %lld\n", (long long)station.windows);
    return 0;
}
