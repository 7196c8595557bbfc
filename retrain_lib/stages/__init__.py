"""What each stage notebook does, as library calls a test can make too."""
