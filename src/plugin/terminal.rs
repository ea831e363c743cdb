//! The caller's terminal during an interactive session: raw while the
//! remote pty does the line editing, restored afterwards.

/// The terminal's settings before the session; restored on drop.
pub struct Raw {
    saved: libc::termios,
}

impl Raw {
    /// Puts stdin's terminal in raw mode; None when it is no terminal.
    pub fn enter() -> Option<Self> {
        // SAFETY: tcgetattr/tcsetattr only read and write the termios
        // struct we own, for fd 0.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(Self { saved })
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enter`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

/// The terminal's width and height, when stdout is one.
pub fn size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills the winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) != 0 || ws.ws_col == 0 {
            return None;
        }
        Some((ws.ws_col, ws.ws_row))
    }
}
