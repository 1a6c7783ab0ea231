/* `make mcu-check` firmware: pick a real waveform stored in flash with the generated XiaoNet C
 * runtime, pushed per channel in packets as a digitiser would deliver it; print the picks,
 * the emulator's instruction count (via the timer, calibrated below) and the stack used. */
#include <stdint.h>

#include "board.h"
#include "waveform.h"
#include "xiaonet.h"

#define PACKET 100  /* samples per channel per push (1 s at 100 Hz) */

static xn_stream station;

static char *put_int(char *out, int64_t value)
{
    char digits[24];
    int n = 0;
    uint64_t v = value < 0 ? (uint64_t)(-value) : (uint64_t)value;
    if (value < 0) *out++ = '-';
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *out++ = digits[--n];
    return out;
}

static void print_line(const char *label, const int64_t *values, int count)
{
    char line[160], *p = line;
    int i;
    while (*label) *p++ = *label++;
    for (i = 0; i < count; i++) { *p++ = ' '; p = put_int(p, values[i]); }
    *p++ = '\n';
    *p = 0;
    board_print(line);
}

static void on_pick(const xn_pick *pick, void *user)
{
    /* PICK phase(0=P,1=S) peak start end probability x 1e6 */
    int64_t v[5];
    (void)user;
    v[0] = pick->phase == 'S';
    v[1] = pick->peak;
    v[2] = pick->start;
    v[3] = pick->end;
    v[4] = (int64_t)(pick->probability * 1e6f + 0.5f);
    print_line("PICK", v, 5);
}

static uint32_t calibrate(uint32_t iterations)
{
    uint32_t t0 = board_ticks();
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(iterations) : : "cc");
    return board_ticks() - t0;
}

int main(void)
{
    static float packet[PACKET];
    int64_t v[6];
    uint32_t start, worst = 0;
    int32_t i, c, j;

    board_timer_start();
    v[0] = XN_WINDOW; v[1] = XN_INT8 ? 8 : 32; v[2] = XN_WAVE_SAMPLES; v[3] = (int64_t)sizeof(xn_stream);
    print_line("MODEL", v, 4);
    v[0] = 10000000; v[1] = calibrate(10000000);  /* 2 instructions per iteration */
    print_line("CALIBRATION", v, 2);

    xn_stream_init(&station, on_pick, 0);
    start = board_ticks();
    for (i = 0; i < XN_WAVE_SAMPLES; i += PACKET) {
        const int32_t n = XN_WAVE_SAMPLES - i < PACKET ? XN_WAVE_SAMPLES - i : PACKET;
        for (c = 0; c < XN_CHANNELS; c++) {
            uint32_t t0, dt;
            int32_t done = 0;
            for (j = 0; j < n; j++) packet[j] = (float)xn_wave[c][i + j];
            t0 = board_ticks();
            while (done < n) done += xn_push(&station, c, packet + done, n - done);
            dt = board_ticks() - t0;
            worst = dt > worst ? dt : worst;
        }
    }
    xn_finish(&station);
    v[0] = board_ticks() - start; v[1] = worst; v[2] = station.windows;
    print_line("TICKS", v, 3);
    v[0] = board_stack_used();
    print_line("STACK", v, 1);
    return 0;
}
