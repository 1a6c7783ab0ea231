/* Minimal Cortex-M4F start-up for QEMU's MPS2 AN386 board: vector table, .data / .bss set-up,
 * FPU on, stack painting (to measure the stack actually used), semihosting output and exit. */
#include <stdint.h>

#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);
void reset_handler(void);

#define STACK_PAINT 0xC0FFEE11u

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void board_print(const char *text) { semihost(0x04, text); }  /* SYS_WRITE0 */

void board_exit(int ok)
{
    semihost(0x18, (const void *)(ok ? 0x20026u : 0x20023u));  /* SYS_EXIT: ApplicationExit / RunTimeError */
    for (;;) {}
}

static void fault_handler(void)
{
    board_print("FAULT\n");
    board_exit(0);
}

__attribute__((section(".isr_vector"), used))
const void *const vectors[16] = {
    &_estack, (const void *)reset_handler, (const void *)fault_handler, (const void *)fault_handler,
    (const void *)fault_handler, (const void *)fault_handler, (const void *)fault_handler,
};

uint32_t board_stack_used(void)
{
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

/* CMSDK APB timer 0: a 32-bit down counter at the 25 MHz peripheral clock. */
#define TIMER0 ((volatile uint32_t *)0x40000000u)

void board_timer_start(void)
{
    TIMER0[0] = 0;
    TIMER0[2] = 0xFFFFFFFFu;  /* RELOAD */
    TIMER0[1] = 0xFFFFFFFFu;  /* VALUE */
    TIMER0[0] = 1;            /* enable */
}

uint32_t board_ticks(void) { return 0xFFFFFFFFu - TIMER0[1]; }

void reset_handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    volatile uint32_t *sp_probe;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; dst++) *dst = 0;
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;  /* CPACR: CP10, CP11 full access (FPU) */
    __asm__ volatile("dsb\n\tisb");
    sp_probe = (volatile uint32_t *)__builtin_frame_address(0);
    for (dst = &_sstack; dst < (uint32_t *)sp_probe - 16; dst++) *dst = STACK_PAINT;
    board_exit(main() == 0);
}
