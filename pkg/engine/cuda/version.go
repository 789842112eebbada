package cuda

import "fmt"

// DriverVersion is the CUDA version the installed driver supports
// (cuDriverGetVersion, e.g. "13.0"), or why the GPU engine cannot run here.
func DriverVersion() (string, error) {
	if err := load(); err != nil {
		return "", err
	}
	var dv int32
	call(drv.driverVersion, ptr(&dv))
	return fmt.Sprintf("%d.%d", dv/1000, (dv%1000)/10), nil
}
