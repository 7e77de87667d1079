"""What every method uses: settings, results folders, runtime, KerasTuner bases."""
